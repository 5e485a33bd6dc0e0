"""Fashion-MNIST as a data set, the 28x28 zoo models, and a user's own layer stack
(``hwbin train --spec``): loading, one-line errors, and fully binary 28x28 models whose
torch eval equals the golden model."""
import json

import numpy as np
import pytest
import torch

from hwbin import golden, ir
from hwbin.data import load_dataset
from hwbin.errors import HwbinError
from hwbin.export import compare_with_torch, export_model
from hwbin.models import MODELS, build_model

from .conftest import run_cli
from .helpers import build_and_run, randomize


@pytest.fixture(scope="module")
def fashion():
    return load_dataset("fashion-mnist")


def test_fashion_mnist_loads_from_the_debian_package(fashion):
    assert fashion.x_train.shape == (60000, 1, 28, 28) and fashion.x_test.shape == (10000, 1, 28, 28)
    assert fashion.x_train.dtype == np.uint8 and fashion.x_train.flags.writeable
    # Published facts about Fashion-MNIST, independent of our reader: balanced classes.
    assert (np.bincount(fashion.y_train, minlength=10) == 6000).all()
    assert (np.bincount(fashion.y_test, minlength=10) == 1000).all()
    assert fashion.x_train.max() == 255 and fashion.x_train.min() == 0


def test_missing_package_is_one_line_naming_it(monkeypatch, tmp_path):
    import hwbin.data as data

    monkeypatch.setattr(data, "FASHION_MNIST_DIR", tmp_path / "absent")
    with pytest.raises(HwbinError, match="install the Debian package dataset-fashion-mnist"):
        load_dataset("fashion-mnist")


def test_data_path_overrides_the_package(tmp_path):
    r = run_cli("train", "--dataset", "fashion-mnist", "--data-path", tmp_path / "nope", "--out", tmp_path / "run")
    assert r.returncode == 2 and "nope: data path does not exist" in r.stderr and "Traceback" not in r.stderr


def test_head_takes_a_fixed_slice(fashion):
    d = fashion.head(100, 20)
    assert (d.x_train == fashion.x_train[:100]).all() and (d.y_test == fashion.y_test[:20]).all()
    with pytest.raises(HwbinError, match="train images: expected at least 1"):
        fashion.head(0)


@pytest.mark.parametrize("name", ["fmnist-cnn", "fmnist-sfc"])
def test_fmnist_models_fully_binary_torch_equals_golden(name, fashion):
    """Random fully binary parameters: torch eval and the golden model agree on every
    prediction and every binary activation of 64 real images."""
    torch.manual_seed(0)
    model = randomize(build_model(name, fashion.in_shape, 10), seed=1)
    with torch.no_grad():  # calibrate batch norm on real images so activations are not constant
        model.train()
        for layer in model.binary_layers():
            if layer.bn is not None:
                layer.bn.reset_running_stats()
                layer.bn.momentum = None
        model(torch.from_numpy(fashion.x_train[:256]).float())
        model.eval()
    irm = export_model(model)
    assert tuple(irm.input_shape) == (1, 28, 28)
    cmp = compare_with_torch(model, irm, fashion.x_test[:64])
    assert cmp["prediction_agreement"] == 1.0
    assert min(cmp["activation_agreement"].values()) == 1.0
    scores = golden.run(irm, fashion.x_test[:64]).scores
    assert len(np.unique(scores.argmax(1))) > 1  # not a constant network


def test_sfc_is_finns_topology():
    model = build_model("fmnist-sfc", (1, 28, 28), 10)
    shapes = [tuple(layer.weight.shape) for layer in model.binary_layers()]
    assert shapes == [(256, 784), (256, 256), (256, 256), (10, 256)]
    assert MODELS["fmnist-sfc"]["dataset"] == "fashion-mnist"


def _write(tmp_path, doc, name="net.json"):
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return p


def test_spec_trains_on_a_slice_exports_and_reports_speed(tmp_path):
    """A user's stack on 512 Fashion-MNIST images: trains, reports images/s, prints no
    numpy warning, and exports with torch eval equal to the golden model."""
    spec = {"spec": [{"kind": "conv", "out": 8, "k": 3, "s": 2, "p": 1}, {"kind": "pool", "k": 2},
                     {"kind": "dense", "out": 32}, {"kind": "dense", "out": "classes"}],
            "dataset": "fashion-mnist"}
    out = tmp_path / "run"
    r = run_cli("train", "--spec", _write(tmp_path, spec), "--method", "horq", "--epochs", "2",
                "--train-images", "512", "--test-images", "200", "--out", out, "--no-plot")
    assert r.returncode == 0, r.stderr
    assert "net on fashion-mnist / horq" in r.stdout and "training images/s" in r.stdout
    assert "Warning" not in r.stderr and "not writable" not in r.stderr, r.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["final"]["train_images_per_s"] > 0 and m["final"]["fully_binary"]
    assert m["history"][-1]["images_per_s"] > 0
    r2 = run_cli("export", out / "model.pt", "-o", tmp_path / "net.hwbin")
    assert r2.returncode == 0, r2.stderr
    assert "on 10000 fashion-mnist images" in r2.stdout and "identical predictions on 100.00%" in r2.stdout


@pytest.mark.parametrize("doc,needle", [
    ("[{", "not a JSON file"),
    ({"layers": []}, "expected a list of layers or an object with 'spec'"),
    ([], "expected at least one layer"),
    ([{"kind": "dense", "out": "classes"}, 3], "layer 1: expected an object"),
    ([{"kind": "lstm", "out": 4}], "layer 0: field 'kind': expected one of conv, deconv, dense, pool, shuffle"),
    ([{"kind": "conv", "out": 8, "kernel": 3}, {"kind": "dense", "out": "classes"}], "unknown field 'kernel'"),
    ([{"kind": "conv", "k": 3}, {"kind": "dense", "out": "classes"}], "layer 0 (conv): missing field 'out'"),
    ([{"kind": "conv", "out": -8}, {"kind": "dense", "out": "classes"}], "field 'out': expected an integer 1..4096"),
    ([{"kind": "conv", "out": 8, "k": "3"}, {"kind": "dense", "out": "classes"}], "field 'k': expected an integer"),
    ([{"kind": "conv", "out": "classes"}, {"kind": "dense", "out": 10}], "\"classes\" only in the last layer"),
    ([{"kind": "deconv", "out": 8, "k": 1, "s": 2}, {"kind": "dense", "out": "classes"}], "smaller than stride"),
    ([{"kind": "pool"}, {"kind": "dense", "out": "classes"}], "first layer must be conv, deconv or dense"),
    ([{"kind": "dense", "out": 8}, {"kind": "conv", "out": "classes"}], "layer 1: conv cannot follow a dense layer"),
    ([{"kind": "conv", "out": 8, "k": 9}, {"kind": "dense", "out": "classes"}], "layer 0: output size 0x0 is empty"),
    ([{"kind": "conv", "out": 8}, {"kind": "pool", "k": 8}, {"kind": "dense", "out": "classes"}],
     "layer 1: pool 8 of a 6x6 map leaves nothing"),
    ([{"kind": "conv", "out": 6, "p": 1}, {"kind": "shuffle", "g": 4}, {"kind": "dense", "out": "classes"}],
     "shuffle groups 4 must divide 6"),
    ([{"kind": "conv", "out": 8, "p": 1}, {"kind": "conv", "out": "classes", "k": 1}], "needs 10x1x1"),
    ({"spec": [{"kind": "dense", "out": "classes"}], "dataset": "cifar"}, "field 'dataset'"),
])
def test_spec_errors_name_file_layer_and_field(tmp_path, doc, needle):
    from hwbin.train import TrainOptions, prepare

    path = _write(tmp_path, doc)
    with pytest.raises(HwbinError) as e:
        prepare(TrainOptions(spec=str(path), dataset="digits", method="xnor", epochs=2))
    msg = str(e.value)
    assert needle in msg and msg.startswith(str(path)) and "\n" not in msg, msg


def test_spec_errors_on_the_command_line(tmp_path):
    """Exit 2, one line, nothing written; the input shape is the data set's (28x28 here)."""
    out = tmp_path / "run"
    bad = _write(tmp_path, [{"kind": "conv", "out": 8, "k": 29}, {"kind": "dense", "out": "classes"}])
    r = run_cli("train", "--spec", bad, "--dataset", "fashion-mnist", "--out", out, "--method", "xnor")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "net.json layer 0: output size 0x0 is empty" in lines[0], r.stderr
    r = run_cli("train", "--spec", tmp_path / "none.json", "--out", out)
    assert r.returncode == 2 and "none.json: spec file not found" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()



@pytest.fixture(scope="module")
def trained_fmnist(fashion):
    """(IR, test images) of fmnist-cnn trained for one epoch on 300 real images (horq: fully
    binary, order 2). Training gives thresholds and bases that random parameters do not."""
    from hwbin.train import TrainOptions, fit, prepare

    opt = TrainOptions(model="fmnist-cnn", method="horq", epochs=1, train_images=300, test_images=100)
    data, model, stages = prepare(opt)
    fit(opt, data, model, stages)
    irm = export_model(model, {"dataset": data.name})
    cmp = compare_with_torch(model, irm, data.x_test)
    assert cmp["prediction_agreement"] == 1.0 and min(cmp["activation_agreement"].values()) == 1.0
    return irm, data.x_test


def test_trained_fmnist_cnn_simulates_bit_and_cycle_exact(trained_fmnist, tmp_path):
    """The generated Verilog in cocotb (Icarus: no C++ build, so quicker here than Verilator
    for two images of 28x28) against the golden model and the cycle model."""
    from hwbin import program as pg
    from hwbin.rtl.emit import generate_rtl
    from hwbin.sim import runner

    m, x = trained_fmnist
    ir.save(m, tmp_path / "m.hwbin")
    generate_rtl(tmp_path / "m.hwbin", tmp_path / "rtl", pg.ArrayConfig(4, 4, 16))
    s = runner.run(tmp_path / "rtl", "icarus", x[:2])
    assert s["vectors"] == 2
    assert s["mismatches"] == 0 and s["cycle_mismatches"] == 0, s["first_divergence"]
    assert s["measured_cycles"] == [s["predicted_cycles"]] * 2


def test_trained_fmnist_cnn_host_firmware_is_bit_exact(trained_fmnist, tmp_path):
    """The generated C on the host under ASan and UBSan: every score and class of 20 test
    images equals the golden model's (embedded as the reference)."""
    m, x = trained_fmnist
    _, res = build_and_run(m, x[:20], tmp_path / "fw")
    assert (res.vectors, res.mismatches) == (20, 0), res.output[-2000:]
