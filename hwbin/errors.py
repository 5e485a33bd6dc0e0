"""The project's one error type: every expected failure (bad input, bad file) raises it.

The CLI turns it into a one-line message and exit status 2; anything else is a bug.
"""


class HwbinError(Exception):
    """A user-facing error. The message names the thing at fault: file, layer, field,
    expected against found."""
