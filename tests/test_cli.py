"""The command line as a user runs it: training, export, inspect, golden, bad input."""
import json
import re

import pytest

from .conftest import run_cli


def test_help_lists_commands():
    r = run_cli("--help")
    assert r.returncode == 0
    for cmd in ("train", "export", "inspect", "golden"):
        assert cmd in r.stdout


def test_train_writes_run_and_lowers_loss(trained_run):
    m = json.loads((trained_run / "metrics.json").read_text())
    losses = [row["train_loss"] for row in m["history"]]
    assert losses[-1] < losses[0]
    assert m["final"]["source"] == "golden" and m["final"]["fully_binary"]
    assert [s["weight_ratio"] for s in m["stages"]][:2] == [0.0, 0.5]
    assert (trained_run / "curves.png").stat().st_size > 10_000
    assert (trained_run / "model.pt").is_file()


def test_export_inspect_golden_agree(trained_run, tmp_path):
    out = tmp_path / "m.hwbin"
    r = run_cli("export", trained_run / "model.pt", "-o", out)
    assert r.returncode == 0, r.stderr
    acc_export = re.search(r"deployed test accuracy \(golden model\): ([\d.]+)%", r.stdout).group(1)
    assert "identical predictions on 100.00%" in r.stdout
    r2 = run_cli("golden", out, "--dump-layers", tmp_path / "dump", "--indices", "0,2-3")
    assert r2.returncode == 0, r2.stderr
    assert re.search(r"golden test accuracy: ([\d.]+)%", r2.stdout).group(1) == acc_export
    assert (tmp_path / "dump" / "conv0.out.npy").is_file()
    r3 = run_cli("inspect", out)
    assert r3.returncode == 0 and "binary MACs" in r3.stdout and "conv0" in r3.stdout
    # same inputs, same bytes
    out2 = tmp_path / "m2.hwbin"
    assert run_cli("export", trained_run / "model.pt", "-o", out2).returncode == 0
    assert out.read_bytes() == out2.read_bytes()


def _assert_one_line_error(r, needle):
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("args,needle", [
    (["--method", "magic"], "invalid choice: 'magic'"),
    (["--model", "resnet"], "invalid choice: 'resnet'"),
    (["--dataset", "cifar"], "invalid choice: 'cifar'"),
    (["--ratios", "50,75"], "must end at 100%"),
    (["--dataset", "mnist"], "needs --data-path"),
    (["--dataset", "mnist", "--data-path", "/nonexistent/mnist"], "does not exist"),
    (["--model", "shapes-seg", "--dataset", "digits"], "is for segment data"),
])
def test_train_bad_input(tmp_path, args, needle):
    out = tmp_path / "run"
    r = run_cli("train", "--out", out, "--epochs", "20", *args)
    _assert_one_line_error(r, needle)
    assert not out.exists() and not any(tmp_path.iterdir())


def test_malformed_data_path(tmp_path):
    bad = tmp_path / "mnist.npz"
    bad.write_bytes(b"not a zip at all")
    r = run_cli("train", "--dataset", "mnist", "--data-path", bad, "--out", tmp_path / "run")
    _assert_one_line_error(r, "mnist.npz")
    folder = tmp_path / "idx"
    folder.mkdir()
    (folder / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 12)
    r = run_cli("train", "--dataset", "mnist", "--data-path", folder, "--out", tmp_path / "run")
    _assert_one_line_error(r, "train-labels-idx1-ubyte")


def test_checkpoint_from_another_config(trained_run, tmp_path):
    r = run_cli("train", "--model", "digits-cnn", "--init", trained_run / "model.pt", "--out", tmp_path / "run")
    _assert_one_line_error(r, "checkpoint is for another config")
    assert not (tmp_path / "run").exists()


def test_export_bad_inputs(tmp_path):
    r = run_cli("export", tmp_path / "missing.pt", "-o", tmp_path / "x.hwbin")
    _assert_one_line_error(r, "checkpoint not found")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk")
    r = run_cli("export", junk, "-o", tmp_path / "x.hwbin")
    _assert_one_line_error(r, "not a readable hwbin checkpoint")
    r = run_cli("inspect", junk)
    _assert_one_line_error(r, "not a hwbin IR file")
    assert not (tmp_path / "x.hwbin").exists()


def test_export_refuses_fp_model(tmp_path):
    run = tmp_path / "fp"
    assert run_cli("train", "--model", "digits-tiny", "--method", "fp", "--epochs", "1", "--out", run,
                   "--no-plot").returncode == 0
    r = run_cli("export", run / "model.pt", "-o", tmp_path / "x.hwbin")
    _assert_one_line_error(r, "not fully binarized")


def test_mnist_loader_reads_idx_and_npz(tmp_path):
    import numpy as np

    from hwbin.data import load_mnist

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, 5).astype(np.uint8)

    def idx(arr):
        head = bytes([0, 0, 8, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
        return head + arr.tobytes()

    for stem, arr in [("train-images-idx3-ubyte", x), ("train-labels-idx1-ubyte", y),
                      ("t10k-images-idx3-ubyte", x[:2]), ("t10k-labels-idx1-ubyte", y[:2])]:
        (tmp_path / stem).write_bytes(idx(arr))
    d = load_mnist(str(tmp_path))
    assert d.x_train.shape == (5, 1, 28, 28) and (d.x_train[:, 0] == x).all() and (d.y_test == y[:2]).all()
    np.savez(tmp_path / "m.npz", x_train=x, y_train=y, x_test=x[:2], y_test=y[:2])
    d2 = load_mnist(str(tmp_path / "m.npz"))
    assert (d2.x_test[:, 0] == x[:2]).all()


@pytest.mark.parametrize("args,needle", [
    (["--board", "ecp5-25f", "--clock-mhz", "50"], "--clock-mhz: a board's clock"),
    (["--board", "icebreaker", "--clock-mhz", "0.5"], "--clock-mhz"),
])
def test_synth_clock_bad_input(tmp_path, args, needle):
    r = run_cli("synth", tmp_path, *args)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert not any(tmp_path.iterdir())
