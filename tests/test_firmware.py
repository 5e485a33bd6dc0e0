"""Generated C against the golden model: every output of the firmware, built with the real
compilers and run on the host (under ASan/UBSan) and on QEMU's Cortex-M3, must equal the
golden model's scores and classes, which the test embeds as the reference."""
import platform
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from hwbin import ir
from hwbin.firmware import FirmwareOptions, generate_firmware, toolchain
from hwbin.models import MODELS

from .conftest import run_cli
from .helpers import build_and_run, random_ir, random_models, zoo_ir


# The host runs both weight layouts: rows (its own) and transposed (Thumb-2's, in portable C);
# on x86-64 the rows once more with POPCNT (the sanitizer build's flags leave it out, so the
# POPCNT kernel, its fused level compares and the SSE2 first layer beside it run here too).
LAYOUTS = {"rows": "", "vertical": "-DHWBIN_VERTICAL=1"}
if platform.machine() == "x86_64":
    LAYOUTS["popcnt"] = "-mpopcnt"


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", list(MODELS))
def test_zoo_host_bit_exact_under_sanitizers(name, layout, tmp_path):
    m, data = zoo_ir(name)
    _, res = build_and_run(m, data.x_test[:24], tmp_path / "fw", defs=LAYOUTS[layout])
    assert (res.vectors, res.mismatches) == (24, 0), res.output[-2000:]


@pytest.mark.parametrize("name", ["digits-cnn", "shapes-seg"])
def test_zoo_qemu_cortex_m3_bit_exact(name, tmp_path):
    m, data = zoo_ir(name)
    _, res = build_and_run(m, data.x_test[:12], tmp_path / "fw", target="cortex-m3", sanitize=False)
    assert (res.vectors, res.mismatches) == (12, 0), res.output[-2000:]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(random_models())
def test_random_models_host_bit_exact(tmp_path, params):
    m, x = random_ir(params)
    if m is None:
        return
    for layout, defs in LAYOUTS.items():
        _, res = build_and_run(m, x, tmp_path / layout, sanitize=True, static_arena=False, defs=defs)
        assert (res.vectors, res.mismatches) == (len(x), 0), (layout, res.output[-2000:])


def _conv(out, k=3, p=1):
    return {"kind": "conv", "out": out, "k": k, "s": 1, "p": p, "g": 1}


# Shapes the random models do not draw (their channels are 4 to 12): a first layer of 16
# channels on 3 (SSE2 sums, three values a tap), whole-word taps of one and two words, rows
# over 32 words (the POPCNT kernel's plain loop) into levels and into scores.
WIDE_SPECS = {
    "words": (3, [_conv(16), _conv(32), _conv(64), {"kind": "pool", "k": 2}, _conv(32),
                  {"kind": "dense", "out": 16}, {"kind": "dense", "out": "classes"}]),
    "long-levels": (1, [_conv(32), {"kind": "dense", "out": 16}, {"kind": "dense", "out": "classes"}]),
    "long-scores": (1, [_conv(32), {"kind": "dense", "out": "classes"}]),
}


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("name", list(WIDE_SPECS))
def test_wide_layers_host_bit_exact(name, order, tmp_path):
    cin, spec = WIDE_SPECS[name]
    m, x = random_ir((8, spec, "classify", order, 7, cin))
    for layout, defs in LAYOUTS.items():
        _, res = build_and_run(m, x, tmp_path / layout, defs=defs)
        assert (res.vectors, res.mismatches) == (len(x), 0), (layout, res.output[-2000:])


def test_flipped_weight_bit_is_caught_with_first_divergence(tmp_path):
    """A broken model table must not pass: flip one weight bit of the scores layer in the
    generated C (it changes every accumulator of that output, so every vector differs)."""
    m, data = zoo_ir("digits-tiny")
    x = data.x_test[:40]
    out = tmp_path / "fw"
    generate_firmware(m, out, FirmwareOptions(), x)
    src = (out / "hwbin_model.c").read_text()
    start = src.rindex(f"hwbin_l{len(m.layers) - 1}_weight[")  # the rows table (#else of HWBIN_VERTICAL): the host's
    i = src.index("0x", start)
    word = int(src[i:i + 10], 16) ^ 1
    (out / "hwbin_model.c").write_text(src[:i] + f"0x{word:08x}" + src[i + 10:])
    toolchain.build(out, "host")
    res = toolchain.run(out, "host")
    assert res.mismatches == len(x)
    msg = toolchain.first_divergence(m, x, res.found)
    assert msg.startswith(f"vector {min(res.found)}: last layer") and "expected score" in msg


def test_cross_compiles_for_every_cortex_m_without_libgcc_popcount(tmp_path):
    m, data = zoo_ir("shapes-seg")
    out = tmp_path / "fw"
    generate_firmware(m, out, FirmwareOptions(), data.x_test[:2])
    for cpu in ("cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7"):
        toolchain.build(out, cpu)  # -std=c99 -Wall -Wextra -Werror -pedantic
        undefined = subprocess.run(["arm-none-eabi-nm", "-u", str(out / "build" / cpu / "hwbin_rt.o")],
                                   capture_output=True, text=True, check=True).stdout.split()
        allowed = {"memset", "memcpy"}
        if cpu == "cortex-m0plus":  # no divide instruction: the EABI's own helpers
            allowed |= {"__aeabi_idiv", "__aeabi_uidiv", "__aeabi_idivmod", "__aeabi_uidivmod"}
        assert set(undefined) - {"U"} <= allowed, (cpu, undefined)


def test_cppcheck_clean(tmp_path):
    m, data = zoo_ir("shapes-seg")
    out = tmp_path / "fw"
    generate_firmware(m, out, FirmwareOptions(), data.x_test[:2])
    r = subprocess.run([shutil.which("cppcheck"), "--enable=warning,style,performance,portability", "--std=c99",
                        "--error-exitcode=1", "-q", "--inline-suppr", "hwbin_rt.c", "hwbin_model.c", "main.c"],
                       cwd=out, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_generated_files_are_deterministic_with_header(tmp_path):
    m, data = zoo_ir("digits-mlp")
    a, b = tmp_path / "a", tmp_path / "b"
    generate_firmware(m, a, FirmwareOptions(prefix="mlp"), data.x_test[:5])
    generate_firmware(ir.from_bytes(ir.to_bytes(m)), b, FirmwareOptions(prefix="mlp"), data.x_test[:5])
    names = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    head = (a / "mlp_model.c").read_text().splitlines()[0]
    from hwbin import __version__
    assert f"hwbin {__version__}" in head and m.hash in head


API_TEST = r"""
#include <stdio.h>
#include <stdlib.h>
#include "{p}_model.h"
#include "{p}_vectors.h"
int main(void) {{
    int32_t scores[{P}_OUTPUT_SIZE];
    uint8_t classes[{P}_CLASSES_SIZE];
    uint8_t *arena = malloc({P}_ARENA_SIZE + 4); /* ASan: any byte past the exact size would trap */
    uint8_t *exact = malloc({P}_ARENA_SIZE);
    int32_t r;
    unsigned fill, i, changed_top = 0;
    if (!arena || !exact) return 90;
    if ({p}_invoke(0, scores, classes, exact, {P}_ARENA_SIZE) != HWBIN_ERR_NULL_ARG) return 1;
    if ({p}_invoke({p}_vector_inputs[0], scores, classes, exact, {P}_ARENA_SIZE - 1) != HWBIN_ERR_ARENA_SIZE) return 2;
    if ({p}_invoke({p}_vector_inputs[0], scores, classes, arena + 1, {P}_ARENA_SIZE + 3) != HWBIN_ERR_ARENA_ALIGN) return 3;
    for (fill = 0x5a; fill <= 0xa5; fill += 0x4b) {{
        memset(exact, (int)fill, {P}_ARENA_SIZE);
        r = {p}_invoke({p}_vector_inputs[0], scores, classes, exact, {P}_ARENA_SIZE);
        if (r < 0) return 4;
        if (classes[0] != {p}_vector_classes[0][0]) return 5;
        for (i = {P}_ARENA_SIZE - 4; i < {P}_ARENA_SIZE; i++) changed_top |= exact[i] != fill;
    }}
    if (!changed_top) return 6; /* the arena's last bytes are used: it is not oversized */
    if ({p}_invoke({p}_vector_inputs[0], 0, 0, exact, {P}_ARENA_SIZE) != (int32_t){p}_vector_classes[0][0]) return 7;
    printf("api ok\n");
    free(arena); free(exact);
    return 0;
}}
"""


@pytest.mark.parametrize("name", ["digits-tiny", "digits-cnn"])
def test_api_status_codes_and_exact_arena(name, tmp_path):
    m, data = zoo_ir(name)
    out = tmp_path / "fw"
    generate_firmware(m, out, FirmwareOptions(prefix="net", static_arena=False), data.x_test[:1])
    (out / "api_test.c").write_text(API_TEST.format(p="net", P="NET"))
    exe = out / "api_test"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g", "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=all", "-o", str(exe), "api_test.c", "net_model.c", "hwbin_rt.c"],
                   cwd=out, check=True)
    r = subprocess.run([str(exe)], capture_output=True, text=True)
    assert r.returncode == 0 and "api ok" in r.stdout, (r.returncode, r.stdout, r.stderr[-2000:])


def test_two_models_link_into_one_firmware(tmp_path):
    """Prefixes keep several models apart; the runtime is shared."""
    (a, da), (b, _) = zoo_ir("digits-tiny"), zoo_ir("digits-mlp", seed=5)
    generate_firmware(a, tmp_path / "a", FirmwareOptions(prefix="tiny"), da.x_test[:1])
    generate_firmware(b, tmp_path / "b", FirmwareOptions(prefix="mlp"), da.x_test[:1])
    main = tmp_path / "two.c"
    main.write_text('#include <stdio.h>\n#include "tiny_model.h"\n#include "mlp_model.h"\n'
                    'int main(void) { static const uint8_t img[TINY_INPUT_SIZE];\n'
                    '  printf("%ld %ld\\n", (long)tiny_invoke(img, 0, 0, 0, 0), (long)mlp_invoke(img, 0, 0, 0, 0));\n'
                    '  return 0; }\n')
    exe = tmp_path / "two"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{tmp_path / 'a'}",
                    f"-I{tmp_path / 'b'}", "-o", str(exe), str(main), str(tmp_path / "a" / "tiny_model.c"),
                    str(tmp_path / "b" / "mlp_model.c"), str(tmp_path / "a" / "hwbin_rt.c")], check=True)
    got = [int(v) for v in subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()]
    from hwbin import golden
    img = np.zeros((1, *a.input_shape), np.uint8)
    assert got == [int(golden.run(a, img).pred[0]), int(golden.run(b, img).pred[0])]


def test_cli_firmware_host_run_and_footprint(tmp_path):
    m, data = zoo_ir("digits-tiny")
    f = tmp_path / "m.hwbin"
    ir.save(m, f)
    out = tmp_path / "fw"
    r = run_cli("firmware", f, "-o", out, "--target", "host", "--run", "--vectors", "30", "--dataset", "digits")
    assert r.returncode == 0, r.stderr
    assert "30/30 vectors bit-exact" in r.stdout
    import json
    fp = json.loads((out / "footprint.json").read_text())
    assert fp["arena_bytes"] == int(next(ln.split()[2] for ln in (out / "hwbin_model.h").read_text().splitlines()
                                         if ln.startswith("#define HWBIN_ARENA_SIZE")))
    assert [la["layer"] for la in fp["layers"]] == [la.name for la in m.layers]
    assert sum(la["weight_bytes"] for la in fp["layers"]) == sum(4 * ((la.taps_per_output()[0] + 31) // 32)
                                                                 * la.out_shape[0] for la in m.compute_layers())


@pytest.mark.parametrize("args, needle", [
    (["--prefix", "9bad"], "--prefix: expected a C identifier"),
    (["--target", "cortex-m4", "--run"], "--run needs host or one of"),
])
def test_cli_firmware_bad_arguments(tmp_path, args, needle):
    m, _ = zoo_ir("digits-tiny")
    f = tmp_path / "m.hwbin"
    ir.save(m, f)
    out = tmp_path / "fw"
    r = run_cli("firmware", f, "-o", out, "--vectors", "2", "--dataset", "digits", *args)
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_cmake_snippet_and_make_fragment_build_a_user_firmware(tmp_path):
    """The integration files, used as an embedded engineer would: include them from a build."""
    m, data = zoo_ir("digits-tiny")
    fw = tmp_path / "fw"
    generate_firmware(m, fw, FirmwareOptions(), data.x_test[:1])
    app = tmp_path / "app"
    app.mkdir()
    (app / "app.c").write_text('#include "hwbin_model.h"\nint main(void) { static const uint8_t img[HWBIN_INPUT_SIZE];\n'
                               '  return hwbin_invoke(img, 0, 0, 0, 0) < 0; }\n')
    (app / "CMakeLists.txt").write_text(f"cmake_minimum_required(VERSION 3.13)\nproject(app C)\n"
                                        f"include({fw}/hwbin.cmake)\nadd_executable(app app.c)\n"
                                        f"target_link_libraries(app hwbin_model)\n")
    subprocess.run(["cmake", "-S", str(app), "-B", str(app / "build")], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(app / "build")], check=True, capture_output=True)
    assert subprocess.run([str(app / "build" / "app")]).returncode == 0
    (app / "Makefile").write_text(f"include {fw}/hwbin.mk\napp2: app.c $(HWBIN_HWBIN_SRCS)\n"
                                  f"\tgcc -std=c99 -Wall -Werror $(HWBIN_HWBIN_CFLAGS) -o $@ $^\n")
    subprocess.run(["make", "-C", str(app), "app2"], check=True, capture_output=True)
    assert subprocess.run([str(app / "app2")]).returncode == 0


def test_firmware_without_vectors_builds(tmp_path):
    """A library user may generate no test vectors: the example program still compiles
    under -Werror (it once compared an unsigned count with < 0) and reports 0 vectors."""
    m, _ = zoo_ir("digits-tiny")
    generate_firmware(m, tmp_path / "fw", FirmwareOptions(), None)
    toolchain.build(tmp_path / "fw", "host")
    res = toolchain.run(tmp_path / "fw", "host")
    assert (res.vectors, res.mismatches) == (0, 0)
