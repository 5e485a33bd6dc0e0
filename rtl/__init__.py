"""The gateware stage: an Amaranth XNOR-popcount array that runs a compiled array program.

``hwbin.program`` compiles an IR into tables; this package turns the tables into hardware
(``top.Top``), Verilog and a cost report (``emit``). It imports as ``hwbin.rtl``.
"""
