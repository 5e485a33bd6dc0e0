"""Hostile and damaged inputs through every verb (a sample of benchmarks/fuzz_cli.py's corpus,
run in process): exit 2 with one line naming the thing at fault, no traceback, no code run
from a file, no file lost or replaced, no partial output. Plus the argument types under
hypothesis, and the cases the issue named, one by one."""
import argparse
import math
import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks import fuzz_cli as fz
from hwbin import argtypes as at
from hwbin import limits


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    return fz.make_fixtures(tmp_path_factory.mktemp("fuzz-base"))


def _run(fx, case, tmp_path, marker):
    before = fz.snapshot(fx.base)
    out = fz.run_case(case, tmp_path, marker, fx, False, before)
    assert fz.snapshot(fx.base) == before
    return out


def test_generated_corpus_keeps_every_promise(fixtures, tmp_path):
    marker = tmp_path / fz.MARKER_NAME
    cases = fz.make_cases(fixtures, 90, seed=1234, marker=str(marker))
    outcomes = [_run(fixtures, c, tmp_path, marker) for c in cases]
    bad = [(o.case.kind, o.case.argv, o.problems, o.stderr[-300:]) for o in outcomes if o.problems]
    assert not bad, bad
    assert sum(o.status == 2 for o in outcomes) > 60   # the corpus is mostly refusals


def _case(kind, argv, **kw):
    return fz.Case(kind, argv, **kw)


def test_named_cases(fixtures, tmp_path):
    """The issue's examples, each once."""
    marker = tmp_path / fz.MARKER_NAME
    evil = fz.ckpt_variants.__globals__["Evil"](str(marker))
    import io
    import pickle

    import torch

    buf = io.BytesIO()
    torch.save({"config": evil, "state_dict": {}}, buf)
    user = {"afile": b"user data\n", "proj/keep.txt": b"project\n"}
    cases = [
        _case("evil checkpoint", ["export", "evil.pt", "-o", "x.hwbin"], files={"evil.pt": buf.getvalue()},
              target="x.hwbin", names=["evil.pt"]),
        _case("evil raw pickle", ["export", "evil.pt", "-o", "x.hwbin"], files={"evil.pt": pickle.dumps(evil)},
              target="x.hwbin", names=["evil.pt"]),
        _case("rtl into a project", ["rtl", str(fixtures.good_ir), "-o", "proj"], files=user, target="proj",
              names=["proj"]),
        _case("rtl onto a file", ["rtl", str(fixtures.good_ir), "-o", "afile"], files=user, target="afile",
              names=["afile"]),
        _case("rtl -o .", ["rtl", str(fixtures.good_ir), "-o", "."], files=user, names=["-o"]),
        _case("export into a folder", ["export", str(fixtures.good_ckpt), "-o", "proj"], files=user,
              names=["proj"]),
        _case("firmware --vectors 0", ["firmware", str(fixtures.good_ir), "-o", "fw", "--target", "host",
                                       "--vectors", "0"], names=["--vectors"]),
        _case("cortex-m4 --run", ["firmware", str(fixtures.good_ir), "-o", "fw", "--run"], names=["--run"]),
        _case("indices bomb", ["golden", str(fixtures.good_ir), "--dump-layers", "d", "--indices", "0-100000000"],
              names=["--indices"]),
        _case("lr nan", ["train", "--lr", "nan", "--out", "r"], names=["--lr"]),
        _case("10,000 layers", ["rtl", "big.hwbin", "-o", "r"], files={"big.hwbin": fz._many_layers_ir(10_000)},
              names=["big.hwbin"]),
        _case("deflate bomb", ["inspect", "bomb.hwbin"], files={"bomb.hwbin": fz.deflate_bomb("conv0.weight.npy")},
              names=["bomb.hwbin"]),
    ]
    for case in cases:
        out = _run(fixtures, case, tmp_path, marker)
        assert out.status == 2 and not out.problems, (case.kind, out.problems, out.stderr)
    assert not marker.exists()


def test_own_earlier_output_is_replaced(fixtures, tmp_path):
    """The one replacement the policy allows: hwbin's own output, all of it, nothing else."""
    marker = tmp_path / fz.MARKER_NAME
    case = _case("dump twice", ["golden", str(fixtures.good_ir), "--dump-layers", "old", "--indices", "1"],
                 setup=[fz._copy_own(fixtures.fw, "old")], target="old", replaceable=True)
    out = _run(fixtures, case, tmp_path, marker)
    assert out.status == 0 and not out.problems, out.stderr
    with_user_file = _case("dump onto edited output", case.argv, target="old", names=["old"],
                           setup=[fz._copy_own(fixtures.fw, "old"), lambda ws: (ws / "old" / "mine.c").write_text("x")])
    out = _run(fixtures, with_user_file, tmp_path, marker)
    assert out.status == 2 and "mine.c" in out.stderr and not out.problems


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=12))
def test_int_arguments_in_range_or_refused(text):
    parse = at.int_in(1, limits.MAX_VECTORS)
    try:
        v = parse(text)
    except argparse.ArgumentTypeError as e:
        assert "expected an integer in 1..10000" in str(e)
    else:
        assert isinstance(v, int) and 1 <= v <= limits.MAX_VECTORS


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=12), st.floats().map(repr)))
def test_float_arguments_finite_and_positive_or_refused(text):
    try:
        v = at.float_in(0, 10, lo_open=True)(text)
    except argparse.ArgumentTypeError:
        return
    assert math.isfinite(v) and 0 < v <= 10


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(-5, 10**6).map(str), st.text(max_size=4)), min_size=1, max_size=6)
       .map(lambda parts: random.Random(len(parts)).choice([",", "-"]).join(parts)))
def test_indices_bounded_or_refused(text):
    try:
        ranges = at.indices(text)
    except argparse.ArgumentTypeError:
        return
    assert sum(b - a + 1 for a, b in ranges) <= limits.MAX_VECTORS and all(0 <= a <= b for a, b in ranges)


def test_no_stray_temporary_folders(fixtures, tmp_path):
    """A damaged input refused by the firmware verb leaves nothing beside the target."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    marker = tmp_path / fz.MARKER_NAME
    case = _case("firmware without a compiler target", ["firmware", "bad.hwbin", "-o", "fw", "--target", "host"],
                 files={"bad.hwbin": fixtures.ir[:100]}, target="fw", names=["bad.hwbin"])
    out = _run(fixtures, case, tmp_path, marker)
    assert out.status == 2 and not out.problems
