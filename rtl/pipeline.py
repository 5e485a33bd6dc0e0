"""A pipeline helper shared by the array and the top level."""
from __future__ import annotations

from amaranth.hdl import Module, Signal


def delay(m: Module, sig, n: int, name: str):
    """``sig`` n cycles later, through n registers of ``m`` named ``name_d1`` .. ``name_dn``."""
    for i in range(n):
        nxt = Signal.like(sig, name=f"{name}_d{i + 1}")
        m.d.sync += nxt.eq(sig)
        sig = nxt
    return sig


def held(m: Module, value, name: str) -> Signal:
    """``value`` registered (unsigned, its width)."""
    reg = Signal(len(value), name=name)
    m.d.sync += reg.eq(value)
    return reg
