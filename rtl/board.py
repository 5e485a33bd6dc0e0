"""The board top level: the array behind a UART bridge (send an image, receive the results).

Protocol (8N1 at ``baud``): the host sends the image's input beats as bytes, in stream order
(position-major, channel fastest); the board answers every output beat as 4 bytes, little
endian (per output position the class scores, then the class). ``hwbin board run`` speaks it.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect

from hwbin import program as pg

from .top import Top


class UARTRx(wiring.Component):
    """8N1 receiver; samples each bit in its middle. ``divisor`` = clock / baud."""

    def __init__(self, divisor: int):
        self.divisor = divisor
        super().__init__({"rx": In(1, init=1), "data": Out(stream.Signature(8, always_ready=True))})

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        rx = Signal(init=1)
        rx_sync = Signal(init=1)
        m.d.sync += [rx_sync.eq(self.rx), rx.eq(rx_sync)]     # two-flop synchronizer
        count = Signal(range(d * 3 // 2 + 1))
        bit = Signal(range(10))
        shift = Signal(8)
        busy = Signal()
        m.d.sync += self.data.valid.eq(0)
        with m.If(~busy):
            with m.If(~rx):
                m.d.sync += [busy.eq(1), count.eq(d + d // 2 - 1), bit.eq(0)]
        with m.Elif(count != 0):
            m.d.sync += count.eq(count - 1)
        with m.Else():
            with m.If(bit == 8):
                m.d.sync += busy.eq(0)
                with m.If(rx):                                   # stop bit: deliver the byte
                    m.d.sync += [self.data.payload.eq(shift), self.data.valid.eq(1)]
            with m.Else():
                m.d.sync += [shift.eq(Cat(shift[1:], rx)), bit.eq(bit + 1), count.eq(d - 1)]
        return m


class UARTTx(wiring.Component):
    """8N1 transmitter with a stream input."""

    def __init__(self, divisor: int):
        self.divisor = divisor
        super().__init__({"data": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        count = Signal(range(self.divisor))
        frame = Signal(10, init=0x3FF)
        bits = Signal(range(11))
        m.d.comb += [self.tx.eq(frame[0]), self.data.ready.eq(bits == 0)]
        with m.If(bits == 0):
            with m.If(self.data.valid):
                m.d.sync += [frame.eq(Cat(0, self.data.payload, 1)), bits.eq(10), count.eq(self.divisor - 1)]
        with m.Elif(count != 0):
            m.d.sync += count.eq(count - 1)
        with m.Else():
            m.d.sync += [frame.eq(Cat(frame[1:], 1)), bits.eq(bits - 1), count.eq(self.divisor - 1)]
        return m


class WordsToBytes(wiring.Component):
    """32-bit result beats -> 4 bytes each, least significant first."""

    def __init__(self):
        super().__init__({"i": In(stream.Signature(32)), "o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        word = Signal(32)
        left = Signal(range(5))
        m.d.comb += [self.i.ready.eq(left == 0), self.o.valid.eq(left != 0), self.o.payload.eq(word[:8])]
        with m.If((left == 0) & self.i.valid):
            m.d.sync += [word.eq(self.i.payload), left.eq(4)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += [word.eq(word >> 8), left.eq(left - 1)]
        return m


class UARTBridge(wiring.Component):
    """The array with a UART on each side; ``busy`` and ``done`` for LEDs."""

    def __init__(self, prog: pg.Program, divisor: int):
        self.prog, self.divisor = prog, divisor
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "busy": Out(1), "done": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = Top(self.prog)
        m.submodules.rx = rx = UARTRx(self.divisor)
        m.submodules.tx = tx = UARTTx(self.divisor)
        m.submodules.bytes = ser = WordsToBytes()
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx), self.busy.eq(core.busy)]
        # the receiver cannot wait; the core accepts a pixel every cycle while loading
        m.d.comb += [core.i_pixel.valid.eq(rx.data.valid), core.i_pixel.payload.eq(rx.data.payload)]
        m.d.comb += [ser.i.valid.eq(core.o_result.valid), ser.i.payload.eq(core.o_result.payload.as_unsigned()),
                     core.o_result.ready.eq(ser.i.ready)]
        connect(m, ser.o, tx.data)
        done = Signal()
        with m.If(core.done):
            m.d.sync += done.eq(~done)
        m.d.comb += self.done.eq(done)
        return m


def bridge_verilog(prog: pg.Program, divisor: int, name: str = "hwbin_uart_top") -> str:
    """The UART bridge alone as Verilog, for simulating the board top end to end."""
    from .emit import convert, header

    return header(prog.model, prog.cfg) + convert(UARTBridge(prog, divisor), name)
