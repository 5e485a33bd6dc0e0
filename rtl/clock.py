"""The board's core clock: the oscillator as it is, or a PLL to the frequency asked for.

A board's oscillator is rarely the speed the core can run at (12 MHz on the iCEBreaker, 25 MHz
on the ULX3S, while the core closes at about 25 and 90 MHz there), so ``hwbin synth --board``
puts a PLL in front of the core's ``sync`` domain. The divider search is the one ``icepll``
and ``ecppll`` (from the open flow) do: every legal divider set, the one nearest the request,
inside the data sheet's ranges, so no external tool has to run and the choice is reproducible.

The core is held in reset until the PLL locks and a few microseconds more: an iCE40's block
RAMs read 0 for about 3 us after configuration (Amaranth's own default domain waits the same).
"""
from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import ClockDomain, Instance, Module, Signal

from hwbin.errors import HwbinError

#: how long the core stays in reset after the PLL locks (iCE40 block RAMs read 0 for ~3 us)
RESET_US = 15


@dataclass(frozen=True)
class Pll:
    """One PLL setting: its dividers (named as the vendor primitive names them) and the
    frequency they give."""
    family: str
    dividers: dict
    mhz: float


def ice40_pll(fin: float, fout: float) -> Pll:
    """SB_PLL40 in SIMPLE feedback: f = fin (DIVF + 1) / ((DIVR + 1) 2^DIVQ); the phase detector
    runs at 10-133 MHz and the VCO at 533-1066 MHz (iCE40 sysCLOCK PLL guide)."""
    best = None
    for divr in range(16):
        pfd = fin / (divr + 1)
        if not 10 <= pfd <= 133:
            continue
        for divf in range(128):
            vco = pfd * (divf + 1)
            if not 533 <= vco <= 1066:
                continue
            for divq in range(1, 7):
                f = vco / 2 ** divq
                if best is None or abs(f - fout) < abs(best[0] - fout):
                    best = (f, divr, divf, divq, pfd)
    if best is None:
        raise HwbinError(f"--clock-mhz: no iCE40 PLL setting from {fin} MHz")
    f, divr, divf, divq, pfd = best
    # the loop filter range by the phase detector's frequency, as icepll picks it
    filter_range = next(i for i, top in enumerate((17, 26, 44, 66, 101, float("inf")), 1) if pfd < top)
    return Pll("ice40", {"DIVR": divr, "DIVF": divf, "DIVQ": divq, "FILTER_RANGE": filter_range}, f)


def ecp5_pll(fin: float, fout: float) -> Pll:
    """EHXPLLL fed back from CLKOP: f = fin CLKFB_DIV / CLKI_DIV, the VCO (f CLKOP_DIV) at
    400-800 MHz and the phase detector at 3.125 MHz or more (ECP5 sysCLOCK guide)."""
    best = None
    for ref in range(1, 129):
        if fin / ref < 3.125:
            break
        for fb in range(1, 81):
            f = fin * fb / ref
            for op in range(1, 129):
                if 400 <= f * op <= 800 and (best is None or abs(f - fout) < abs(best[0] - fout)):
                    best = (f, ref, fb, op)
    if best is None:
        raise HwbinError(f"--clock-mhz: no ECP5 PLL setting from {fin} MHz")
    f, ref, fb, op = best
    return Pll("ecp5", {"CLKI_DIV": ref, "CLKFB_DIV": fb, "CLKOP_DIV": op}, f)


def pll_for(family: str, fin: float, fout: float) -> Pll:
    if not 1 <= fout <= 400:
        raise HwbinError(f"--clock-mhz: expected 1 to 400 MHz, found {fout:g}")
    return (ice40_pll if family == "ice40" else ecp5_pll)(fin, fout)


def _instance(pll: Pll, pin, clk, lock) -> Instance:
    """The vendor primitive: the pin goes straight into the PLL (on the iCEBreaker the
    oscillator's pin is the PLL's own pad, which only SB_PLL40_PAD may use)."""
    d = pll.dividers
    if pll.family == "ice40":
        return Instance("SB_PLL40_PAD", p_FEEDBACK_PATH="SIMPLE", p_DIVR=d["DIVR"], p_DIVF=d["DIVF"],
                        p_DIVQ=d["DIVQ"], p_FILTER_RANGE=d["FILTER_RANGE"], i_PACKAGEPIN=pin, i_RESETB=1,
                        i_BYPASS=0, o_PLLOUTGLOBAL=clk, o_LOCK=lock)
    return Instance("EHXPLLL", p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                    p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
                    p_CLKI_DIV=d["CLKI_DIV"], p_CLKFB_DIV=d["CLKFB_DIV"], p_CLKOP_DIV=d["CLKOP_DIV"],
                    p_CLKOP_CPHASE=d["CLKOP_DIV"] - 1, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
                    i_CLKI=pin, i_CLKFB=clk, i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=0,
                    i_PHASESTEP=0, i_PHASELOADREG=0, i_PLLWAKESYNC=0, i_ENCLKOP=0, o_CLKOP=clk, o_LOCK=lock)


def add_core_clock(m: Module, platform, pll: Pll) -> None:
    """Drive the ``sync`` domain from the board's oscillator through ``pll`` (nextpnr's timing
    target is the PLL's frequency); the core stays in reset until the PLL locks."""
    sync, por = ClockDomain("sync"), ClockDomain("por", local=True)
    m.domains += [sync, por]
    platform.add_clock_constraint(sync.clk, pll.mhz * 1e6)
    lock, ready = Signal(), Signal()
    # an iCE40 PLL takes its own pad unbuffered; an EHXPLLL's CLKI takes the buffered input
    pin = (platform.request(platform.default_clk, dir="-").io if pll.family == "ice40"
           else platform.request(platform.default_clk).i)
    m.submodules.pll = _instance(pll, pin, sync.clk, lock)
    delay = int(RESET_US * pll.mhz)
    timer = Signal(range(delay + 1))
    with m.If(timer == delay):
        m.d.por += ready.eq(1)
    with m.Else():
        m.d.por += timer.eq(timer + 1)
    m.d.comb += [por.clk.eq(sync.clk), por.rst.eq(~lock), sync.rst.eq(~ready)]
