"""Firmware back end: generated C99 that runs an exported model bit-exactly on a host or a
Cortex-M (imported as ``hwbin.firmware``).

``generate`` turns an IR model into C sources (jinja2 templates + the hand-written runtime in
``runtime/``); ``toolchain`` builds them with gcc or arm-none-eabi-gcc, runs them on the host
or under QEMU, and measures flash and RAM. The back end sees only the IR.
"""
from .generate import FirmwareOptions, TARGETS, generate_firmware, plan_firmware  # noqa: F401
