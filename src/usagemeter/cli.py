"""The ``usagemeter`` command."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``usagemeter`` command."""
    return 0
