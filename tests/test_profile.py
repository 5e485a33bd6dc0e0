"""The instruction-set profile of the firmware (firmware/profile.py): unicorn runs the real
Cortex-M build, so its counts must add up, react to a slower build, and its scores must be
the golden model's (which profile_firmware checks, so a wrong kernel cannot be profiled)."""
import pytest

from hwbin.firmware import FirmwareOptions, generate_firmware
from hwbin.firmware.profile import CYCLE_TABLES, classify, profile_firmware, register_count

from .conftest import run_cli
from .helpers import zoo_ir


@pytest.fixture(scope="module")
def digits_tiny(tmp_path_factory):
    m, data = zoo_ir("digits-tiny")
    out = tmp_path_factory.mktemp("prof") / "fw"
    plan = generate_firmware(m, out, FirmwareOptions(), data.x_test[:2])
    return plan, out, data.x_test


@pytest.mark.parametrize("cpu", ["cortex-m4", "cortex-m0plus"])
def test_layer_rows_add_up_to_the_total(digits_tiny, cpu):
    plan, out, x = digits_tiny
    prof = profile_firmware(out, plan, cpu, x[0])
    names = [r["name"] for r in prof.rows]
    assert names == ["entry"] + [la.name for la in plan.model.layers] + ["argmax"]
    assert sum(r["instructions"] for r in prof.rows) == prof.total_instructions
    assert sum(r["cycles"] for r in prof.rows) == prof.total_cycles
    assert sum(sum(r["classes"].values()) for r in prof.rows) == prof.total_instructions
    assert sum(f[0] for f in prof.functions.values()) == prof.total_instructions
    for r, la in zip(prof.rows[1:-1], plan.model.layers):
        assert r["instructions"] > 0, la.name   # every layer ran and was attributed
    assert prof.total_instructions <= prof.total_cycles <= 4 * prof.total_instructions


def test_a_slower_build_counts_more(digits_tiny):
    plan, out, x = digits_tiny
    fast = profile_firmware(out, plan, "cortex-m4", x[1], cflags="-O2")
    slow = profile_firmware(out, plan, "cortex-m4", x[1], cflags="-O0")
    assert slow.total_instructions > 1.5 * fast.total_instructions
    assert slow.total_cycles > 1.5 * fast.total_cycles


def test_same_input_same_counts(digits_tiny):
    plan, out, x = digits_tiny
    a = profile_firmware(out, plan, "cortex-m4", x[0])
    b = profile_firmware(out, plan, "cortex-m4", x[0])
    assert (a.total_instructions, a.total_cycles) == (b.total_instructions, b.total_cycles)


@pytest.mark.parametrize("mnemonic, ops, expected", [
    ("mls", "r0, r1, r2, r3", ("mla", False)),      # not a conditional "m"
    ("muls", "r0, r1, r0", ("mul", False)),
    ("bls", "#0x100", ("branch", True)),
    ("bl", "#0x100", ("call", False)),
    ("cbz", "r0, #0x20", ("branch", True)),
    ("ldr.w", "r3, [r0], #4", ("load", False)),
    ("ldrbeq", "r3, [r0]", ("load", False)),   # a load costs the same taken or skipped
    ("pop", "{r4, r5, r6, pc}", ("branch_multi", False)),
    ("bics", "r0, r1", ("alu", False)),
    ("eor.w", "r0, r1, r2", ("alu", False)),
])
def test_classify(mnemonic, ops, expected):
    assert classify(mnemonic, ops) == expected


def test_register_count():
    assert register_count("{r4-r11, lr}") == 9
    assert register_count("sp!, {r4, r5, r6, r7, r8, r9, sl, fp, lr}") == 9


def test_cycle_tables_name_their_manual():
    for cpu, t in CYCLE_TABLES.items():
        assert "ARM DDI" in t.name or "M4 table" in t.name, cpu


def test_cli_profile(tmp_path):
    m, _ = zoo_ir("digits-mlp")
    from hwbin import ir
    ir.save(m, tmp_path / "m.hwbin")
    r = run_cli("firmware", str(tmp_path / "m.hwbin"), "-o", str(tmp_path / "fw"), "--target", "cortex-m4",
                "--profile", "--vectors", "1")
    assert r.returncode == 0, r.stderr
    assert "estimated cycles" in r.stdout and (tmp_path / "fw" / "profile.json").exists()
    r = run_cli("firmware", str(tmp_path / "m.hwbin"), "-o", str(tmp_path / "fw2"), "--target", "host", "--profile")
    assert r.returncode == 2 and "--profile" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "fw2").exists()
