import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def run_cli(*args, cwd=None):
    """Run the real command line (as a user would) and capture everything."""
    return subprocess.run([sys.executable, "-m", "hwbin.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A short srb run of digits-tiny, shared by the CLI tests."""
    out = tmp_path_factory.mktemp("runs") / "srb"
    r = run_cli("train", "--model", "digits-tiny", "--method", "srb", "--epochs", "14", "--out", out)
    assert r.returncode == 0, r.stderr
    return out
