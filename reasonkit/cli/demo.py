"""`reasonkit demo`: the offline end-to-end demo (tiny model + synthetic benchmark)."""

from __future__ import annotations


def demo_command() -> None:
    """Build the tiny model and synthphys data, then evaluate it — fully offline."""
    from reasonkit.errors import ReasonkitError

    raise ReasonkitError("the demo needs `reasonkit synth` (not built yet)")
