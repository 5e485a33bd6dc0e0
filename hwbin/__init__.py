"""hwbin: binary neural networks from PyTorch to exact gateware and firmware."""
__version__ = "0.1.0"

from .errors import HwbinError  # noqa: E402,F401
