"""The documented limits on what hwbin reads (README "What the CLI promises", docs/ir.md).

Every input is checked against these before it is read, inflated or compiled, so that a
hostile or damaged file fails in well under a second with a one-line error instead of
filling the memory or running for minutes. They are far above anything the targets can hold
(an iCE40 UP5K has 1 Mbit of RAM, an ECP5-85 3.7 Mbit, a large Cortex-M a few MB of flash).
"""

MiB = 1 << 20

#: Largest file hwbin opens as an IR file, a checkpoint, an .npz or IDX data file.
MAX_FILE_BYTES = 256 * MiB
#: Largest uncompressed size of all entries of one zip (IR file, .npz) together.
MAX_UNZIPPED_BYTES = 256 * MiB
#: Largest JSON document (an IR manifest, an rtl folder's manifest.json).
MAX_JSON_BYTES = 4 * MiB
#: Deepest nesting of objects and lists in such a JSON document.
MAX_JSON_DEPTH = 32

#: Layers of one model (IR or checkpoint spec).
MAX_LAYERS = 256
#: Channels of one tensor, and height or width of one feature map.
MAX_CHANNELS = 4096
MAX_SIDE = 4096
#: Values of one activation tensor (C x H x W).
MAX_ACTIVATION = 1 << 20
#: Weight bits of a whole model (8 MiB packed).
MAX_WEIGHT_BITS = 1 << 26
#: Binary multiply-accumulates per image of a whole model.
MAX_BINARY_MACS = 1 << 30

#: Test vectors embedded in firmware or simulated, and images dumped by golden --indices.
MAX_VECTORS = 10_000
