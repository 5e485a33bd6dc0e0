"""A pipeline helper shared by the array and the top level."""
from __future__ import annotations

from amaranth.hdl import Module, Signal


def held(m: Module, value, name: str) -> Signal:
    """``value`` one cycle later: one register of ``m`` named ``name``, of ``value``'s shape
    (a Signal's reset value too). One stage of ``delay``, for a value that needs no more."""
    reg = Signal.like(value, name=name)
    m.d.sync += reg.eq(value)
    return reg


def delay(m: Module, sig, n: int, name: str):
    """``sig`` n cycles later, through n ``held`` registers of ``m`` named ``name_d1`` .. ``name_dn``."""
    for i in range(n):
        sig = held(m, sig, f"{name}_d{i + 1}")
    return sig
