"""Binary layers and quantizers, usable in a model of your own."""
from .layers import ChannelShuffle, QConv2d, QConvTranspose2d, QLinear, is_binary_layer  # noqa: F401
from .quant import (ClippedQuantizer, PixelInput, ResidualBinarizer, SignSTE,  # noqa: F401
                    WeightBinarizer, binarization_error, channel_alpha, sign_ste)
