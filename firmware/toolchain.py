"""Build, run and measure generated firmware with the real tools: gcc, arm-none-eabi-gcc,
arm-none-eabi-size/nm and qemu-system-arm, all driven through the generated Makefile."""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hwbin import golden
from hwbin.errors import HwbinError
from hwbin.util import atomic_write_json, atomic_write_text, format_table

from .generate import FirmwarePlan

QEMU_MACHINES = {"cortex-m3": "mps2-an385"}
PROFILE_TARGETS = ("cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7")  # firmware/profile.py
SUMMARY = re.compile(r"^hwbin: (\d+) vectors, (\d+) mismatches$", re.M)
MISMATCH = re.compile(r"^mismatch: vector (\d+) status (-?\d+) scores((?: -?\d+)*)$", re.M)
DEB_PACKAGE = {"gcc": "gcc", "make": "make", "arm-none-eabi-gcc": "gcc-arm-none-eabi",
               "arm-none-eabi-size": "binutils-arm-none-eabi", "arm-none-eabi-nm": "binutils-arm-none-eabi",
               "qemu-system-arm": "qemu-system-arm", "size": "binutils", "nm": "binutils"}


@dataclass
class RunResult:
    vectors: int
    mismatches: int
    found: dict[int, tuple[int, list[int]]] = field(default_factory=dict)  # vector -> (status, scores)
    output: str = ""


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise HwbinError(f"{tool} not found: install the Debian package {DEB_PACKAGE.get(tool, tool)} "
                         f"(scripts/setup.sh does)")
    return path


def make(fw_dir, *targets: str, timeout: int = 600) -> str:
    require("make")
    r = subprocess.run(["make", "-C", str(fw_dir), *targets], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        lines = [ln for ln in (r.stderr or r.stdout).splitlines() if ln.strip()]
        first = next((ln for ln in lines if "error" in ln.lower()), lines[-1] if lines else "no output")
        raise HwbinError(f"{fw_dir}: make {' '.join(targets)} failed: {first.strip()}")
    return r.stdout


def compiler_for(target: str) -> str:
    return "gcc" if target == "host" else "arm-none-eabi-gcc"


def build(fw_dir, target: str, sanitize: bool = False, image: bool = False, defs: str = "") -> None:
    """Compile for ``target``: the host test program, or the library objects for a Cortex-M
    (and the QEMU image when ``image``). ``defs``: preprocessor flags (the Makefile's DEFS),
    e.g. "-DHWBIN_VERTICAL=1" for the transposed weight layout on the host."""
    require(compiler_for(target))
    extra = [f"DEFS={defs}"] if defs else []
    if target == "host":
        make(fw_dir, "host-sanitize" if sanitize else "host", *extra)
    else:
        make(fw_dir, f"lib-{target}", *extra)
        if image:
            if target not in QEMU_MACHINES:
                raise HwbinError(f"--target {target}: --run needs host or one of {sorted(QEMU_MACHINES)} "
                                 f"(QEMU board mps2-an385)")
            make(fw_dir, target, *extra)


def run(fw_dir, target: str, sanitize: bool = False, timeout: int = 600) -> RunResult:
    """Run the embedded golden vectors on the host or under QEMU, and parse what it printed."""
    fw_dir = Path(fw_dir)
    prefix = _prefix(fw_dir)
    if target == "host":
        exe = fw_dir / "build" / ("host-sanitize" if sanitize else "host") / f"{prefix}_test"
        cmd = [str(exe)]
    else:
        cmd = [require("qemu-system-arm"), "-M", QEMU_MACHINES[target], "-nographic",
               "-semihosting-config", "enable=on,target=native",
               "-kernel", str(fw_dir / "build" / target / f"{prefix}_test.elf")]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise HwbinError(f"{cmd[0]}: no result within {timeout} s") from None
    out = r.stdout + r.stderr
    m = SUMMARY.search(out)
    if m is None:
        tail = out.strip().splitlines()[-1] if out.strip() else "no output"
        raise HwbinError(f"{Path(cmd[0]).name}: the firmware ended without its summary line "
                         f"(exit status {r.returncode}): {tail}")
    found = {int(v): (int(s), [int(x) for x in sc.split()]) for v, s, sc in MISMATCH.findall(out)}
    return RunResult(int(m.group(1)), int(m.group(2)), found, out)


def first_divergence(m, x, found: dict) -> str:
    """Where the firmware's scores first differ from the golden model's, in words."""
    i = min(found)
    status, scores = found[i]
    ref = golden.run(m, x[i:i + 1]).scores[0]
    got = np.asarray(scores, dtype=np.int64)
    if got.size != ref.size:
        return f"vector {i}: status {status}, {got.size} scores printed, expected {ref.size}"
    diff = np.nonzero(got != ref.ravel())[0]
    if not len(diff):
        return f"vector {i}: scores equal the golden model's but the class or status differs (status {status})"
    c, rest = divmod(int(diff[0]), ref[0].size)
    where = f"class {c}" + (f", pixel ({rest // ref.shape[2]}, {rest % ref.shape[2]})" if ref.ndim == 3 else "")
    return (f"vector {i}: last layer '{m.layers[-1].name}', {where}: expected score {int(ref.ravel()[diff[0]])}, "
            f"found {int(got[diff[0]])} ({len(diff)} of {ref.size} scores differ)")


def _prefix(fw_dir: Path) -> str:
    import json

    return json.loads((fw_dir / "plan.json").read_text())["prefix"]


# --------------------------------------------------------------------------- footprint

def symbol_sizes(tool: str, obj: Path) -> dict[str, int]:
    r = subprocess.run([require(tool), "-S", "--size-sort", str(obj)], capture_output=True, text=True, check=True)
    sizes = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4:
            sizes[parts[3]] = int(parts[1], 16)
    return sizes


def section_sizes(tool: str, obj: Path) -> dict[str, int]:
    r = subprocess.run([require(tool), str(obj)], capture_output=True, text=True, check=True)
    text, data, bss = (int(v) for v in r.stdout.splitlines()[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


def footprint(plan: FirmwarePlan, fw_dir, target: str) -> dict:
    """Flash and RAM per layer (from the object's symbol sizes) and in total (from size)."""
    fw_dir = Path(fw_dir)
    p = plan.options.prefix
    tools = ("size", "nm") if target == "host" else ("arm-none-eabi-size", "arm-none-eabi-nm")
    make(fw_dir, f"lib-{target}")
    objdir = fw_dir / "build" / target
    model_o, rt_o = objdir / f"{p}_model.o", objdir / "hwbin_rt.o"
    sym = symbol_sizes(tools[1], model_o)
    layers = []
    for lp in plan.layers:
        flash = sum(v for k, v in sym.items() if k.startswith(f"{p}_l{lp.index}_"))
        layers.append({"layer": lp.layer.name, "kind": lp.layer.kind, "flash_bytes": flash,
                       "weight_bytes": 0 if lp.weight_words is None else 4 * lp.weight_words.size,
                       "ram_bytes": lp.ram_bytes})
    model_s, rt_s = section_sizes(tools[0], model_o), section_sizes(tools[0], rt_o)
    static_arena = plan.arena_size if plan.options.static_arena else 0
    return {
        "target": target, "model_hash": plan.hash, "prefix": p, "layers": layers,
        "model_object": model_s, "runtime_object": rt_s,
        "flash_bytes": model_s["text"] + model_s["data"] + rt_s["text"] + rt_s["data"],
        "ram_bytes": model_s["data"] + model_s["bss"] + rt_s["data"] + rt_s["bss"]
        + (0 if plan.options.static_arena else plan.arena_size),
        "arena_bytes": plan.arena_size, "static_arena": bool(static_arena),
        "layer_table_bytes": sym.get(f"{p}_layers", 0),
    }


def write_footprint(fp: dict, fw_dir) -> str:
    rows = [[la["layer"], la["kind"], la["weight_bytes"], la["flash_bytes"], la["ram_bytes"]] for la in fp["layers"]]
    table = format_table(["layer", "kind", "weight B", "flash B", "RAM B (live)"], rows)
    text = (f"# Firmware footprint ({fp['target']})\n\nModel `{fp['model_hash']}`, prefix `{fp['prefix']}`. "
            f"Per layer: flash from the symbol sizes of the model object (weights, thresholds, bases); RAM is "
            f"what the arena holds while the layer runs (its input, its output and the scratch row).\n\n"
            f"```\n{table}\n```\n\n"
            f"| total | bytes |\n|---|---|\n"
            f"| flash (model + runtime: text + data) | {fp['flash_bytes']} |\n"
            f"| RAM (data + bss{'' if fp['static_arena'] else ' + caller arena'}) | {fp['ram_bytes']} |\n"
            f"| arena (exact) | {fp['arena_bytes']} |\n"
            f"| model object text / data / bss | {fp['model_object']['text']} / {fp['model_object']['data']} / "
            f"{fp['model_object']['bss']} |\n"
            f"| runtime object text / data / bss | {fp['runtime_object']['text']} / {fp['runtime_object']['data']} / "
            f"{fp['runtime_object']['bss']} |\n")
    atomic_write_text(Path(fw_dir) / "footprint.md", text)
    atomic_write_json(Path(fw_dir) / "footprint.json", fp)
    return table


def callgrind_instructions(cmd: list[str], function: str, cwd) -> int:
    """Instructions executed inside ``function`` and what it calls (valgrind callgrind): an
    exact, repeatable cost, unlike wall-clock time on a shared machine."""
    require("valgrind")
    out = Path(cwd) / "callgrind.out"
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", f"--toggle-collect={function}",
                    *cmd], cwd=cwd, check=True, capture_output=True)
    text = out.read_text()
    m = re.search(r"^summary:\s+(\d+)", text, re.M) or re.search(r"^totals:\s+(\d+)", text, re.M)
    return int(m.group(1))
