"""Firmware cost of digits-cnn: the binary firmware against a float reference build of the
same network, side by side in one run.

  - Cortex-M4 and M0+ (-O2): instructions and estimated cycles per inference and per layer
    (firmware/profile.py: unicorn + capstone + the TRM cycle tables), binary against the
    float32 reference built for the same core (software floating point: no FPU modelled);
  - instructions per inference on the host (valgrind callgrind, counted inside the inference
    function only), binary (POPCNT and portable SWAR popcount) against float32;
  - weight bytes, binary (packed bits) against float32;
  - flash and RAM of the model library for cortex-m0plus, m3, m4 and m7 (arm-none-eabi-size).

    .venv/bin/python benchmarks/firmware_cost.py                 # trains fp and srb once (about 3 min)
    .venv/bin/python benchmarks/firmware_cost.py --fp runs/fp/model.pt --srb runs/srb/model.pt
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.float_reference import float_c_source  # noqa: E402
from hwbin.data import load_dataset  # noqa: E402
from hwbin.export import export_model  # noqa: E402
from hwbin.firmware import FirmwareOptions, generate_firmware, toolchain  # noqa: E402
from hwbin.firmware import profile  # noqa: E402
from hwbin.models import load_checkpoint  # noqa: E402
from hwbin.util import atomic_write_json, format_table  # noqa: E402

SEED_CLAIMS = "staged residual (seed 000, CPU) ~5x; HORQ order 2 ~30x; XNOR-Net 58x (speed-up over full precision)"
INT8_ANCHOR = "int8 (SMLAD kernels, same shape, issue 15's estimate by the same cost model): 3.42 M instr / 4.13 M cycles on M4"
PROFILE_CPUS = ("cortex-m4", "cortex-m0plus")
BOARD_LD = Path(__file__).resolve().parent.parent / "firmware" / "boards" / "mps2_an385" / "mps2_an385.ld"


def float_on_cortex(src_dir: Path, cpu: str, image: np.ndarray, classes: int) -> tuple[int, int, int]:
    """(instructions, estimated cycles, class) of the float reference on ``cpu`` in the emulator,
    software floating point (newlib's, as on a part without an FPU)."""
    elf = src_dir / f"float_{cpu}.elf"
    subprocess.run(["arm-none-eabi-gcc", "-std=c99", "-O2", f"-mcpu={cpu}", "-mthumb", "-mfloat-abi=soft",
                    "-nostartfiles", "--specs=nano.specs", "-Wl,--gc-sections", "-Wl,-e,float_forward",
                    "-T", str(BOARD_LD), "-o", str(elf), str(src_dir / "float_model.c"), "-lm"], check=True)
    img, out = profile.IO_BASE, profile.IO_BASE + 0x40000
    n, c, raw = profile.count_call(elf, cpu, "float_forward", [img, out], {img: image.tobytes()},
                                   (out, 4 * classes))
    return n, c, int(np.argmax(np.frombuffer(raw, "<f4")))

FLOAT_MAIN = r"""
#include <stdio.h>
#include <stdint.h>
void float_forward(const uint8_t *img, float *scores);
static const uint8_t images[{n}][{size}] = {{ {images} }};
int main(void) {{
    float scores[{classes}];
    unsigned i, c, best;
    for (i = 0; i < {n}; i++) {{
        float_forward(images[i], scores);
        for (best = 0, c = 1; c < {classes}; c++) if (scores[c] > scores[best]) best = c;
        printf("%u\n", best);
    }}
    return 0;
}}
"""


def train_default(method: str, workdir: Path) -> Path:
    """digits-cnn trained with the defaults, kept in ``workdir`` for the next run."""
    from hwbin.train import TrainOptions, train

    out = workdir / method
    if not (out / "model.pt").exists():
        train(TrainOptions(model="digits-cnn", method=method), out, plot=False)
    return out / "model.pt"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fp", help="checkpoint of the full-precision digits-cnn (trained if not given)")
    p.add_argument("--srb", help="checkpoint of the srb digits-cnn (trained if not given)")
    p.add_argument("--runs", default="benchmarks/out/runs", help="where trained checkpoints are kept")
    p.add_argument("--vectors", type=int, default=50)
    p.add_argument("--out", default="benchmarks/out/firmware_cost.json")
    args = p.parse_args()
    data = load_dataset("digits")
    x = data.x_test[:args.vectors]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        fp_ckpt = Path(args.fp) if args.fp else train_default("fp", Path(args.runs))
        srb_ckpt = Path(args.srb) if args.srb else train_default("srb", Path(args.runs))
        srb, _ = load_checkpoint(srb_ckpt)
        fp, _ = load_checkpoint(fp_ckpt)
        irm = export_model(srb)

        # binary firmware on the host: POPCNT and the portable SWAR kernel
        fw = tmp / "fw"
        plan = generate_firmware(irm, fw, FirmwareOptions(), x)
        ir_bin = {}
        for name, flags in (("popcnt", "-O2 -mpopcnt"), ("swar", "-O2")):
            subprocess.run(["make", "-s", "-B", "-C", str(fw), "host", f"HOST_CFLAGS={flags}"], check=True,
                           capture_output=True)
            res = toolchain.run(fw, "host")
            assert res.mismatches == 0, "binary firmware differs from the golden model"
            ir_bin[name] = toolchain.callgrind_instructions([str(fw / "build" / "host" / "hwbin_test")], "hwbin_invoke", fw) / len(x)

        # float reference of the fp model's real-valued weights
        src, n_float_weights, classes = float_c_source(fp, data.in_shape)
        (tmp / "float_model.c").write_text(src)
        (tmp / "float_main.c").write_text(FLOAT_MAIN.format(
            n=len(x), size=x[0].size, classes=classes, images=", ".join(
                "{" + ", ".join(map(str, im.ravel())) + "}" for im in x)))
        exe = tmp / "float_test"
        subprocess.run(["gcc", "-std=c99", "-O2", "-o", str(exe), str(tmp / "float_main.c"),
                        str(tmp / "float_model.c")], check=True)
        pred_c = np.array(subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split(), int)
        import torch
        with torch.no_grad():
            pred_t = fp(torch.from_numpy(x).float()).argmax(1).numpy()
        float_agree = float((pred_c == pred_t).mean())
        ir_float = toolchain.callgrind_instructions([str(exe)], "float_forward", tmp) / len(x)

        # one inference per Cortex-M core in the emulator: binary per layer, float in total
        prof = {cpu: profile.profile_firmware(fw, plan, cpu, x[0]) for cpu in PROFILE_CPUS}
        float_m = {cpu: float_on_cortex(tmp, cpu, x[0], classes) for cpu in PROFILE_CPUS}
        for cpu, (_, _, cls) in float_m.items():
            assert cls == pred_t[0], f"float reference on {cpu} gives class {cls}, torch {pred_t[0]}"

        # flash and RAM per Cortex-M
        cortex = {}
        for cpu in ("cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7"):
            toolchain.build(fw, cpu)
            fpr = toolchain.footprint(plan, fw, cpu)
            cortex[cpu] = {"flash": fpr["flash_bytes"], "ram": fpr["ram_bytes"],
                           "runtime_text": fpr["runtime_object"]["text"]}

    float_weight_bytes = 4 * n_float_weights
    rows = [["instructions / inference (host, callgrind)", f"{ir_bin['popcnt']:.0f} (POPCNT), "
             f"{ir_bin['swar']:.0f} (SWAR)", f"{ir_float:.0f}",
             f"{ir_float / ir_bin['popcnt']:.1f}x, {ir_float / ir_bin['swar']:.1f}x"],
            ["weight bytes", plan.weight_bytes, float_weight_bytes, f"{float_weight_bytes / plan.weight_bytes:.1f}x"]]
    print(f"digits-cnn firmware, {len(x)} test images; float C = torch fp eval on {float_agree * 100:.1f}%\n")
    print(format_table(["", "binary (srb)", "float32", "ratio"], rows))
    print()
    print(format_table(["target", "flash B", "RAM B", "runtime code B"],
                       [[k, v["flash"], v["ram"], v["runtime_text"]] for k, v in cortex.items()]))
    print()
    print(format_table(["Cortex-M (-O2, one inference)", "binary instr", "binary est. cycles", "float instr",
                        "float est. cycles", "speed-up", "binary MACs/cycle"],
                       [[cpu, f"{p.total_instructions:,}", f"{p.total_cycles:,}", f"{float_m[cpu][0]:,}",
                         f"{float_m[cpu][1]:,}", f"{float_m[cpu][1] / p.total_cycles:.1f}x",
                         f"{p.binary_macs / p.total_cycles:.2f}"] for cpu, p in prof.items()]))
    for cpu, p in prof.items():
        print(f"\n{cpu} per layer ({p.table}):\n{profile.profile_table(p)}")
    binary_macs = prof[PROFILE_CPUS[0]].binary_macs
    print(f"\nhost: {binary_macs / ir_bin['popcnt']:.2f} binary MACs per instruction (POPCNT)")
    print(f"anchor: {INT8_ANCHOR}")
    print(f"seed claims for comparison: {SEED_CLAIMS}")
    atomic_write_json(args.out, {"instructions_binary_popcnt": ir_bin["popcnt"], "instructions_binary_swar": ir_bin["swar"],
                                 "instructions_float": ir_float, "weight_bytes_binary": plan.weight_bytes,
                                 "weight_bytes_float": float_weight_bytes, "float_torch_agreement": float_agree,
                                 "cortex": cortex, "vectors": len(x),
                                 "profile": {cpu: profile.profile_summary(p) for cpu, p in prof.items()},
                                 "float_cortex": {cpu: {"instructions": v[0], "cycles": v[1]} for cpu, v in float_m.items()},
                                 "host_binary_macs_per_instruction": binary_macs / ir_bin["popcnt"]})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
