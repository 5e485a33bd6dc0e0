"""The IR file: deterministic bytes, validation with one-line errors, and a fuzz test."""
import io
import json
import random
import zipfile

import numpy as np
import pytest
import torch

from hwbin import golden, ir
from hwbin.errors import HwbinError
from hwbin.export import ExportError, export_model
from hwbin.models import build_model

from .test_golden import randomize


@pytest.fixture(scope="module")
def model_bytes():
    torch.manual_seed(0)
    net = randomize(build_model("digits-tiny", (1, 8, 8), 10), seed=1)
    return ir.to_bytes(export_model(net))


def _rewrite(data: bytes, edit) -> bytes:
    """Apply ``edit`` to the manifest dict, keep the arrays, and re-zip."""
    zin = zipfile.ZipFile(io.BytesIO(data))
    files = {n: zin.read(n) for n in zin.namelist()}
    man = json.loads(files["manifest.json"])
    edit(man, files)
    files["manifest.json"] = json.dumps(man).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, b in files.items():
            z.writestr(n, b)
    return buf.getvalue()


def test_bytes_are_deterministic(model_bytes):
    m = ir.from_bytes(model_bytes)
    assert ir.to_bytes(m) == model_bytes
    torch.manual_seed(0)
    again = randomize(build_model("digits-tiny", (1, 8, 8), 10), seed=1)
    assert ir.to_bytes(export_model(again)) == model_bytes


def _npy(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _set(path, value):
    def edit(man, files):
        obj = man
        for k in path[:-1]:
            obj = obj[k]
        obj[path[-1]] = value
    return edit


def _unsort(man, files):
    t = np.load(io.BytesIO(files["conv0.thresholds.npy"]))
    t[0] = t[0][::-1] - np.arange(t.shape[1])  # strictly descending
    files["conv0.thresholds.npy"] = _npy(t)


def _widen(man, files):
    man["layers"][0]["acc_bits"] = 40


CASES = [
    (_set(["magic"], "nope"), "field 'magic'"),
    (_set(["version"], 99), "field 'version'"),
    (_set(["layers", 1, "kind"], "lstm"), "field 'kind'"),
    (_set(["layers", 0, "out_shape"], [8, 7, 8]), "field 'out_shape'"),
    (_set(["layers", 3, "in_order"], 3), "field 'in_bases'"),
    (_set(["layers", 0, "stride"], "2"), "field 'stride'"),
    (_set(["input", "dtype"], "float32"), "field 'dtype'"),
    (_unsort, "array 'thresholds'"),
    (_widen, "field 'acc_bits'"),
    (_set(["hash"], "0" * 64), "field 'hash'"),
]


@pytest.mark.parametrize("edit,needle", CASES)
def test_bad_fields_name_the_field(model_bytes, edit, needle):
    with pytest.raises(HwbinError) as e:
        ir.from_bytes(_rewrite(model_bytes, edit), "bad.hwbin")
    msg = str(e.value)
    assert msg.startswith("bad.hwbin: ") and needle in msg and "\n" not in msg


def test_truncated_and_not_zip(model_bytes):
    with pytest.raises(HwbinError, match="not a hwbin IR file"):
        ir.from_bytes(model_bytes[: len(model_bytes) // 2], "t.hwbin")
    with pytest.raises(HwbinError, match="not a hwbin IR file"):
        ir.from_bytes(b"hello", "t.hwbin")


def test_bad_input_shape_and_dtype(model_bytes):
    m = ir.from_bytes(model_bytes)
    with pytest.raises(HwbinError, match="dtype uint8"):
        golden.run(m, np.zeros((1, 1, 8, 8), np.float32))
    with pytest.raises(HwbinError, match=r"expected shape \(N, 1, 8, 8\)"):
        golden.run(m, np.zeros((1, 1, 9, 8), np.uint8))


def test_export_refuses_partial_and_non_finite():
    torch.manual_seed(0)
    net = randomize(build_model("digits-tiny", (1, 8, 8), 10))
    net.binary_layers()[2].weight_mask[3] = False
    with pytest.raises(ExportError, match="layer 2 is not fully binarized"):
        export_model(net)
    net = randomize(build_model("digits-tiny", (1, 8, 8), 10))
    with torch.no_grad():
        net.binary_layers()[1].bn.weight[0] = float("nan")
    with pytest.raises(ExportError, match="non-finite"):
        export_model(net)


def _mutations(data: bytes, rng: random.Random):
    for _ in range(60):
        b = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        yield bytes(b)
    for _ in range(20):
        yield data[: rng.randrange(len(data))]
    fields = [["layers", 0, "groups"], ["layers", 1, "kernel"], ["num_classes"], ["layers", 0, "in_bases"],
              ["layers", 3, "out_bases"], ["layers", 2, "arrays"], ["task"], ["layers"], ["input", "shape"]]
    values = [0, -1, 3, 2 ** 40, "x", None, [], [1], [2, 2], {}, True, 1.5]
    for f in fields:
        for v in values:
            yield _rewrite(data, _set(f, v))


def test_fuzz_loads_and_runs_or_raises_own_error(model_bytes):
    rng = random.Random(7)
    x = np.random.default_rng(0).integers(0, 256, (2, 1, 8, 8), dtype=np.uint8)
    outcomes = {"ok": 0, "error": 0}
    for data in _mutations(model_bytes, rng):
        try:
            m = ir.from_bytes(data, "fuzz.hwbin")
            golden.run(m, x)
            outcomes["ok"] += 1
        except HwbinError as e:
            assert "\n" not in str(e)
            outcomes["error"] += 1
    assert outcomes["error"] > 0
