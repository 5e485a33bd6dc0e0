"""Prototype measurement (issue 15): conv1 and conv2 of digits-cnn through the transposed-weight,
bit-sliced kernel (vconv.c) in the Cortex-M4 emulator, checked bit for bit against the golden
model's conv1 levels.   .venv/bin/python benchmarks/vertical/run_proto.py MODEL.hwbin [CPU]"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from hwbin import golden, ir  # noqa: E402
from hwbin.data import load_dataset  # noqa: E402
from hwbin.firmware import FirmwareOptions, generate_firmware, profile  # noqa: E402

LEVELS = 11


def words(bits):  # bit array (..., nbits) LSB first -> uint32 words
    b = bits.reshape(-1, 32).astype(np.uint64)
    return (b << np.arange(32, dtype=np.uint64)).sum(axis=1).astype(np.uint32)


def planes(levels):  # (C, H, W) order-2 levels -> 2 planes, index (y*W + x)*C + c
    hwc = levels.transpose(1, 2, 0).reshape(-1)
    return np.concatenate([words((hwc >> 1) & 1), words(hwc & 1)])


def tables(layer):
    wb = layer.arrays["weight"]  # (O, C, 3, 3)
    o, c = wb.shape[:2]
    n = c * 9
    blocks = o // 32
    wt = []
    for b in range(blocks):
        for ky in range(3):
            for kx in range(3):
                for j in range(c // 32):
                    for m in range(32):
                        ch = j * 32 + 31 - m
                        wt.append(int(words(wb[b * 32:(b + 1) * 32, ch, ky, kx])[0]))
    thr, d = layer.arrays["thresholds"].astype(np.int64), layer.arrays["directions"]
    vthr, flips = [], []
    for b in range(blocks):
        vs = np.zeros((32, 3), np.int64)
        f = 0
        for r in range(32):
            ch = b * 32 + r
            if d[ch] > 0:
                v = np.floor_divide(3 * n - thr[ch], 2) + 1
                f |= 1 << r
            else:
                v = -np.floor_divide(-(thr[ch] + 3 * n), 2)
            vs[r] = np.sort(np.clip(v, 0, (1 << LEVELS) - 1))
        flips.append(f)
        for j in range(3):
            for lv in range(LEVELS):
                vthr.append(int(words((vs[:, j] >> lv) & 1)[0]))
    return np.array(wt, np.uint32), np.array(vthr, np.uint32), np.array(flips, np.uint32)


def main():
    model = ir.load(sys.argv[1])
    cpu = sys.argv[2] if len(sys.argv) > 2 else "cortex-m4"
    x = load_dataset("digits").x_test[:1]
    g = golden.run(model, x, taps=True)
    names = [lay.name for lay in model.layers]
    total = 0
    for name in ("conv1", "conv2"):
        i = names.index(name)
        total += measure(model.layers[i], planes(g.taps[names[i - 1]][0]), planes(g.taps[name][0]), cpu)
    # the runtime as it is, same image, same emulator: its conv1 and conv2 rows
    with tempfile.TemporaryDirectory() as tmp:
        plan = generate_firmware(model, Path(tmp) / "fw", FirmwareOptions(), x)
        prof = profile.profile_firmware(Path(tmp) / "fw", plan, cpu, x[0])
    rows = {r["name"]: r["cycles"] for r in prof.rows}
    now = rows["conv1"] + rows["conv2"]
    print(f"{cpu} conv1 + conv2: prototype {total:,} est. cycles, runtime now {now:,} "
          f"(conv1 {rows['conv1']:,}, conv2 {rows['conv2']:,})")
    print(f"{cpu} whole inference now {prof.total_cycles:,}; with the prototype's two layers "
          f"{prof.total_cycles - now + total:,}")


def measure(layer, inp, want, cpu):
    wt, vthr, flips = tables(layer)
    c, h, w = layer.in_shape
    shape = np.array([h, w, c // 32, layer.out_shape[0] // 32], np.uint32)
    with tempfile.TemporaryDirectory() as tmp:
        elf = Path(tmp) / "vconv.elf"
        subprocess.run(["arm-none-eabi-gcc", "-std=c99", "-O2", *os.environ.get("VCONV_CFLAGS", "").split(), f"-mcpu={cpu}", "-mthumb", "-nostartfiles",
                        "--specs=nano.specs", "-Wl,--gc-sections", "-Wl,-e,vconv", "-T",
                        str(ROOT / "firmware/boards/mps2_an385/mps2_an385.ld"), "-o", str(elf),
                        str(Path(__file__).with_name("vconv.c"))], check=True)
        size = subprocess.run(["arm-none-eabi-size", str(elf)], capture_output=True, text=True).stdout
        print(subprocess.run(["arm-none-eabi-nm", "-S", "--size-sort", str(elf)], capture_output=True, text=True).stdout.strip())
        base = profile.IO_BASE
        addrs, blobs, at = [], {}, base
        for arr in (inp, wt, vthr, flips, shape):
            addrs.append(at)
            blobs[at] = arr.astype("<u4").tobytes()
            at += (len(blobs[at]) + 15) // 16 * 16
        outp = at
        n, cyc, raw = profile.count_call(elf, cpu, "vconv", [addrs[0], addrs[1], addrs[2], addrs[3], outp, addrs[4]],
                                         blobs, (outp, 4 * len(want)))
    got = np.frombuffer(raw, "<u4")
    print(size.splitlines()[1].split()[0], "bytes of text")
    print(f"{cpu} {layer.name} (transposed, bit-sliced): {n:,} instructions, {cyc:,} est. cycles; exact: "
          f"{np.array_equal(got, want)} ({int((got != want).sum())} words differ)")
    return cyc


if __name__ == "__main__":
    main()
