"""One inference of the generated firmware in an instruction-set emulator: instructions and
estimated cycles per layer on a Cortex-M, before anyone buys a board.

The firmware's own library (``<prefix>_model.c`` + ``hwbin_rt.c``, built by the generated
Makefile's ``profile-<cpu>`` target with ``-DHWBIN_PROFILE``) is loaded from its ELF into
unicorn (a real ARMv6-M/ARMv7-M CPU emulator), ``<prefix>_invoke`` is called on a test image,
and every executed basic block is decoded with capstone and costed with the cycle table of
the core's technical reference manual (:data:`CYCLE_TABLES`, documented in
docs/firmware.md). The runtime calls ``hwbin_profile_layer(i)`` before each layer (profile
builds only), which is how instructions are attributed: every instruction lands in exactly
one row (``entry``, a layer, or ``argmax``), so the rows add up to the total.

The result is checked, not trusted: the scores the emulated firmware returns must equal the
golden model's, or the profile is refused.
"""
from __future__ import annotations

import bisect
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hwbin.errors import HwbinError

from . import toolchain

FLASH_BASE, RAM_BASE, REGION = 0x0000_0000, 0x2000_0000, 4 << 20   # the mps2_an385.ld map
IO_BASE = RAM_BASE + 3 * (1 << 20)        # input, scores and classes buffers (above .bss)
STACK_TOP = RAM_BASE + REGION - 64
RETURN_ADDR = FLASH_BASE + REGION - 0x100  # a mapped address nothing jumps to but our return
MAX_INSTRUCTIONS = 400_000_000


@dataclass(frozen=True)
class CycleTable:
    """Cycles per instruction class, from the core's technical reference manual.
    ``load_pipelined`` is what a load or store costs right after another one (the M3/M4
    overlap their address and data phases); LDM/STM/PUSH/POP cost 1 + registers; a taken
    branch costs ``branch_taken`` (pipeline refill included), a call ``call``."""
    name: str
    alu: int = 1
    mul: int = 1
    mla: int = 1
    long_mul: int = 1
    div: int = 12
    load: int = 2
    load_pipelined: int = 1
    branch_taken: int = 3
    branch_not_taken: int = 1
    call: int = 3

    def cost(self, klass: str, pipelined: bool = False) -> int:
        if klass in ("load", "store"):
            return self.load_pipelined if pipelined else self.load
        return {"alu": self.alu, "mul": self.mul, "mla": self.mla, "long_mul": self.long_mul,
                "div": self.div}[klass]


CYCLE_TABLES = {
    # ARM DDI 0439B (Cortex-M4 TRM) table 3-1: ALU 1, MUL 1, MLA/MLS 2, long multiplies 1,
    # SDIV/UDIV 2-12 (12 used), LDR/STR 2 with neighbouring loads/stores pipelined to 1,
    # LDM/STM 1+N, taken branch 1+P with P = 1..3 (2 used), BL 1+P.
    "cortex-m4": CycleTable("Cortex-M4 (ARM DDI 0439B)", mla=2),
    # ARM DDI 0337 (Cortex-M3 TRM) table 18-1: as the M4, long multiplies 3-5 (4 used).
    "cortex-m3": CycleTable("Cortex-M3 (ARM DDI 0337)", mla=2, long_mul=4),
    # The M7 dual-issues; this table does not model that, so its estimate is an upper bound.
    "cortex-m7": CycleTable("Cortex-M7 (M4 table, no dual issue: upper bound)", mla=2),
    # ARM DDI 0484C (Cortex-M0+ TRM) table 3-1, single-cycle multiplier option: ALU 1, MULS 1,
    # LDR/STR 2 (no pipelining), LDM/STM/PUSH/POP 1+N, taken branch 2, BL 3, BX/BLX 2.
    "cortex-m0plus": CycleTable("Cortex-M0+ (ARM DDI 0484C)", load_pipelined=2, branch_taken=2, call=3),
}

_CONDS = {"eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le", "al"}
_BRANCHES = {"b", "bl", "blx", "bx", "cbz", "cbnz", "tbb", "tbh"}
_MLA = {"mla", "mls", "smlabb", "smlabt", "smlatb", "smlatt", "smlad", "smladx", "smlsd", "smmla", "smmls",
        "usada8"}
_LONG_MUL = {"umull", "smull", "umlal", "smlal", "umaal", "smlald", "smlsld"}


def _classify_base(m: str, op_str: str) -> str | None:
    """Class of a mnemonic without condition suffix, or None for a plain ALU operation."""
    if m in ("push", "pop") or m.startswith(("ldm", "stm")):
        return "branch_multi" if m == "pop" and "pc" in op_str else "multi"
    if m in _BRANCHES:
        return "call" if m in ("bl", "blx") else "branch"
    if m.startswith("ldr"):
        return "branch_load" if op_str.startswith("pc") else "load"
    if m.startswith("str"):
        return "store"
    if m in ("udiv", "sdiv"):
        return "div"
    if m in _LONG_MUL:
        return "long_mul"
    if m in _MLA:
        return "mla"
    if m.startswith(("mul", "smul", "smmul")):
        return "mul"
    return None


def classify(mnemonic: str, op_str: str) -> tuple[str, bool]:
    """(class, conditional) of one instruction from capstone's mnemonic and operands. A
    mnemonic with a condition suffix (a Bcc, or an instruction in an IT block) is tried as
    written first, so MLS or MULS are not read as a conditional M."""
    m = mnemonic.split(".")[0]
    klass = _classify_base(m, op_str)
    if klass is None and m[-2:] in _CONDS:
        klass = _classify_base(m[:-2], op_str)
        if klass is not None:
            return klass, True
    return klass or "alu", m in ("cbz", "cbnz")


def register_count(op_str: str) -> int:
    """Registers in a register list such as {r4-r7, lr}."""
    inside = op_str[op_str.find("{") + 1:op_str.find("}")] if "{" in op_str else ""
    n = 0
    for part in filter(None, (p.strip() for p in inside.split(","))):
        if "-" in part:
            lo, hi = (int(r.strip().lstrip("r")) for r in part.split("-"))
            n += hi - lo + 1
        else:
            n += 1
    return n


@dataclass
class Block:
    """A decoded basic block: its cost without the final control transfer, and that transfer."""
    instructions: int
    cycles: int
    classes: dict[str, int]
    end: int
    last: str               # class of the last instruction
    conditional: bool       # ... and whether it was conditional


@dataclass
class Profile:
    cpu: str
    table: str
    rows: list[dict] = field(default_factory=list)   # name, instructions, cycles, classes
    functions: dict[str, list[int]] = field(default_factory=dict)  # symbol -> [instructions, cycles]
    total_instructions: int = 0
    total_cycles: int = 0
    binary_macs: int = 0
    flash_bytes: int = 0
    ram_bytes: int = 0


# --------------------------------------------------------------------------- ELF loading

def _elf_segments(path: Path) -> list[tuple[int, bytes, int]]:
    """(address, file bytes, memory size) of every PT_LOAD segment of a 32-bit ARM ELF."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
        raise HwbinError(f"{path}: expected a 32-bit little-endian ELF file")
    phoff, = struct.unpack_from("<I", data, 28)
    phentsize, phnum = struct.unpack_from("<HH", data, 42)
    segs = []
    for i in range(phnum):
        p_type, p_offset, p_vaddr, _, p_filesz, p_memsz, _, _ = struct.unpack_from("<8I", data, phoff + i * phentsize)
        if p_type == 1 and p_memsz:
            segs.append((p_vaddr, data[p_offset:p_offset + p_filesz], p_memsz))
    return segs


def _symbols(path: Path) -> dict[str, int]:
    """Name -> address of every symbol (functions: the Thumb bit cleared)."""
    r = subprocess.run([toolchain.require("arm-none-eabi-nm"), str(path)], capture_output=True, text=True, check=True)
    syms = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "tTwW":
            syms[parts[2]] = int(parts[0], 16) & ~1
    return syms


# --------------------------------------------------------------------------- emulation

class _Emulator:
    """unicorn running the profile ELF, with a basic-block hook that costs every block."""

    def __init__(self, elf: Path, cpu: str):
        import unicorn
        from unicorn import arm_const

        self.uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS)
        model = {"cortex-m0plus": arm_const.UC_CPU_ARM_CORTEX_M0, "cortex-m3": arm_const.UC_CPU_ARM_CORTEX_M3,
                 "cortex-m4": arm_const.UC_CPU_ARM_CORTEX_M4, "cortex-m7": arm_const.UC_CPU_ARM_CORTEX_M7}[cpu]
        self.uc.ctl_set_cpu_model(model)
        self.uc.mem_map(FLASH_BASE, REGION)
        self.uc.mem_map(RAM_BASE, REGION)
        for addr, blob, memsz in _elf_segments(elf):
            self.uc.mem_write(addr, blob + bytes(memsz - len(blob)))
        self.arm = arm_const
        self.unicorn = unicorn

    def call(self, entry: int, args: list[int], on_block) -> int:
        a = self.arm
        for reg, v in zip((a.UC_ARM_REG_R0, a.UC_ARM_REG_R1, a.UC_ARM_REG_R2, a.UC_ARM_REG_R3), args[:4]):
            self.uc.reg_write(reg, v)
        sp = STACK_TOP - 4 * len(args[4:])
        for i, v in enumerate(args[4:]):
            self.uc.mem_write(sp + 4 * i, struct.pack("<I", v))
        self.uc.reg_write(a.UC_ARM_REG_SP, sp)
        self.uc.reg_write(a.UC_ARM_REG_LR, RETURN_ADDR | 1)
        hook = self.uc.hook_add(self.unicorn.UC_HOOK_BLOCK, lambda uc, addr, size, _: on_block(addr, size))
        try:
            self.uc.emu_start(entry | 1, RETURN_ADDR, count=MAX_INSTRUCTIONS)
        except self.unicorn.UcError as e:
            pc = self.uc.reg_read(a.UC_ARM_REG_PC)
            raise HwbinError(f"profile: the emulated firmware stopped at 0x{pc:08x}: {e}") from None
        finally:
            self.uc.hook_del(hook)
        if self.uc.reg_read(a.UC_ARM_REG_PC) != RETURN_ADDR:
            raise HwbinError(f"profile: the firmware did not return within {MAX_INSTRUCTIONS} instructions")
        return self.uc.reg_read(a.UC_ARM_REG_R0)


class _BlockCoster:
    """Decodes each basic block once (capstone) and costs it with a cycle table."""

    def __init__(self, uc, table: CycleTable):
        import capstone

        self.cs = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS)
        self.uc, self.table, self.cache = uc, table, {}

    def block(self, addr: int, size: int) -> Block:
        key = (addr, size)
        if key not in self.cache:
            self.cache[key] = self._decode(addr, size)
        return self.cache[key]

    def _decode(self, addr: int, size: int) -> Block:
        code = bytes(self.uc.mem_read(addr, size))
        cycles, n, classes, prev_mem = 0, 0, {}, False
        klass, conditional = "alu", False
        for ins in self.cs.disasm(code, addr):
            klass, conditional = classify(ins.mnemonic, ins.op_str)
            if klass in ("branch", "call"):
                c = 0  # costed by transfer(), once the next block shows whether it was taken
            elif klass in ("multi", "branch_multi"):
                c = 1 + register_count(ins.op_str)
            else:
                kind = "load" if klass == "branch_load" else klass
                c = self.table.cost(kind, pipelined=prev_mem and kind in ("load", "store"))
            cycles += c
            n += 1
            classes[klass] = classes.get(klass, 0) + 1
            prev_mem = klass in ("load", "store")
        return Block(instructions=n, cycles=cycles, classes=classes, end=addr + size, last=klass,
                     conditional=conditional)

    def transfer(self, prev: Block, taken: bool) -> int:
        """Cycles of the control transfer that ended ``prev``, now that the next block shows
        whether it was taken: a branch or call costs its refill, a POP or LDR into pc the
        refill on top of the load already counted."""
        t = self.table
        if prev.last == "call":
            return t.call
        if prev.last == "branch":
            return t.branch_taken if taken or not prev.conditional else t.branch_not_taken
        if prev.last in ("branch_multi", "branch_load"):
            return t.branch_taken - 1
        return 0


class _Tally:
    """Costs every executed block into the current row, by function and by block. A block's
    final branch is costed when the next block shows whether it was taken."""

    def __init__(self, emu: _Emulator, cpu: str, symbols: dict[str, int], rows: int):
        if cpu not in CYCLE_TABLES:
            raise HwbinError(f"--profile: expected one of {sorted(CYCLE_TABLES)}, found {cpu!r}")
        self.coster = _BlockCoster(emu.uc, CYCLE_TABLES[cpu])
        self.rows = [[0, 0, {}] for _ in range(rows)]   # instructions, cycles, classes
        self.row, self.prev, self.prev_row = 0, None, 0
        self.starts = sorted((a, n) for n, a in symbols.items())
        self.func_of, self.functions = {}, {}

    def block(self, addr: int, size: int) -> None:
        if self.prev is not None:
            self.rows[self.prev_row][1] += self.coster.transfer(self.prev, addr != self.prev.end)
        b = self.coster.block(addr, size)
        if addr not in self.func_of:
            i = bisect.bisect_right(self.starts, (addr, "\uffff")) - 1
            self.func_of[addr] = self.starts[i][1] if i >= 0 else "?"
        for acc in (self.functions.setdefault(self.func_of[addr], [0, 0]), self.rows[self.row]):
            acc[0] += b.instructions
            acc[1] += b.cycles
        classes = self.rows[self.row][2]
        for k, v in b.classes.items():
            classes[k] = classes.get(k, 0) + v
        self.prev, self.prev_row = b, self.row

    def finish(self) -> None:
        """The final return to the caller."""
        if self.prev is not None:
            self.rows[self.prev_row][1] += self.coster.transfer(self.prev, True)


def profile_elf(elf: Path, cpu: str, model, image: np.ndarray, prefix: str) -> tuple[Profile, np.ndarray]:
    """Run ``<prefix>_invoke`` once on ``image`` and return the per-layer profile and the scores."""
    syms = _symbols(elf)
    for name in (f"{prefix}_invoke", "hwbin_profile_layer"):
        if name not in syms:
            raise HwbinError(f"{elf}: symbol {name} missing: not a profile build of prefix {prefix!r}")
    emu = _Emulator(elf, cpu)
    names = ["entry"] + [la.name for la in model.layers] + ["argmax"]
    tally = _Tally(emu, cpu, syms, len(names))
    n_out = int(np.prod(model.layers[-1].out_shape))
    inp, scores, classes = IO_BASE, IO_BASE + 0x40000, IO_BASE + 0x80000
    emu.uc.mem_write(inp, np.ascontiguousarray(image, np.uint8).tobytes())
    mark, r0 = syms["hwbin_profile_layer"], emu.arm.UC_ARM_REG_R0

    def on_block(addr, size):
        if addr == mark:   # hwbin_profile_layer(i): layer i starts (n_layers: the argmax)
            tally.row = int(emu.uc.reg_read(r0)) + 1
        tally.block(addr, size)

    ret = emu.call(syms[f"{prefix}_invoke"], [inp, scores, classes, 0, 0], on_block)
    tally.finish()
    got = np.frombuffer(bytes(emu.uc.mem_read(scores, 4 * n_out)), "<i4").astype(np.int64)
    if ret >= 0x8000_0000:
        raise HwbinError(f"profile: {prefix}_invoke returned status {ret - (1 << 32)}")
    prof = Profile(cpu=cpu, table=tally.coster.table.name,
                   functions=dict(sorted(tally.functions.items(), key=lambda kv: -kv[1][0])))
    by_name = {la.name: la for la in model.layers}
    for name, (n, c, cl) in zip(names, tally.rows):
        la = by_name.get(name)
        prof.rows.append({"name": name, "kind": la.kind if la is not None else "",
                          "instructions": n, "cycles": c, "classes": dict(sorted(cl.items())),
                          "binary_macs": la.binary_macs() if la is not None and la.is_compute else 0})
    prof.total_instructions = sum(r["instructions"] for r in prof.rows)
    prof.total_cycles = sum(r["cycles"] for r in prof.rows)
    prof.binary_macs = sum(r["binary_macs"] for r in prof.rows)
    return prof, got


def count_call(elf: Path, cpu: str, function: str, args: list[int], inputs: dict[int, bytes],
               output: tuple[int, int] = (IO_BASE, 0)) -> tuple[int, int, bytes]:
    """(instructions, estimated cycles, output bytes) of one call of any function of a bare
    ELF (for reference builds such as the float model in benchmarks/firmware_cost.py).
    ``inputs``: bytes to write at RAM addresses first (IO_BASE and above is free); ``output``:
    (address, size) to read back afterwards."""
    syms = _symbols(elf)
    if function not in syms:
        raise HwbinError(f"{elf}: symbol {function} missing")
    emu = _Emulator(elf, cpu)
    for addr, blob in inputs.items():
        emu.uc.mem_write(addr, blob)
    tally = _Tally(emu, cpu, syms, 1)
    emu.call(syms[function], args, tally.block)
    tally.finish()
    return tally.rows[0][0], tally.rows[0][1], bytes(emu.uc.mem_read(*output))


def profile_firmware(fw_dir, plan, cpu: str, image: np.ndarray, cflags: str | None = None) -> Profile:
    """Build the profile ELF for ``cpu``, run one inference and check it against the golden model."""
    from hwbin import golden

    fw_dir = Path(fw_dir)
    prefix = plan.options.prefix
    toolchain.require("arm-none-eabi-gcc")
    # -B: a profile build with other flags must not reuse the last one's objects
    toolchain.make(fw_dir, "-B", f"profile-{cpu}", *([f"PROFILE_CFLAGS={cflags}"] if cflags else []))
    elf = fw_dir / "build" / f"profile-{cpu}" / f"{prefix}_profile.elf"
    prof, scores = profile_elf(elf, cpu, plan.model, image, prefix)
    ref = golden.run(plan.model, image[None]).scores[0].ravel()
    if not np.array_equal(scores, ref):
        bad = int(np.nonzero(scores != ref)[0][0])
        raise HwbinError(f"profile ({cpu}): the emulated firmware's score {bad} is {int(scores[bad])}, "
                         f"the golden model's {int(ref[bad])}")
    fpr = toolchain.footprint(plan, fw_dir, cpu)
    prof.flash_bytes, prof.ram_bytes = fpr["flash_bytes"], fpr["ram_bytes"]
    return prof


def profile_table(prof: Profile) -> str:
    from hwbin.util import format_table

    rows = []
    for r in prof.rows:
        cl = r["classes"]
        mem = cl.get("load", 0) + cl.get("store", 0) + cl.get("multi", 0)
        br = sum(cl.get(k, 0) for k in ("branch", "call", "branch_multi", "branch_load"))
        rows.append([r["name"], r["kind"], f"{r['instructions']:,}", f"{r['cycles']:,}",
                     f"{100 * r['cycles'] / max(prof.total_cycles, 1):.1f}%", f"{mem:,}", f"{br:,}",
                     f"{r['binary_macs'] / r['cycles']:.2f}" if r["binary_macs"] and r["cycles"] else ""])
    rows.append(["total", "", f"{prof.total_instructions:,}", f"{prof.total_cycles:,}", "100.0%", "", "",
                 f"{prof.binary_macs / max(prof.total_cycles, 1):.2f}"])
    return format_table(["layer", "kind", "instructions", "est. cycles", "share", "loads/stores", "branches",
                         "binary MACs/cycle"], rows)


def profile_summary(prof: Profile) -> dict:
    """What profile.json holds: totals, the cost model, and every row."""
    return {"cpu": prof.cpu, "cycle_table": prof.table, "instructions": prof.total_instructions,
            "cycles": prof.total_cycles, "binary_macs": prof.binary_macs, "flash_bytes": prof.flash_bytes,
            "ram_bytes": prof.ram_bytes, "layers": prof.rows,
            "functions": {k: {"instructions": v[0], "cycles": v[1]} for k, v in prof.functions.items()}}
