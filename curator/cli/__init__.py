"""The `curator` command, one module per verb family; curator.cli.main parses and dispatches."""

from curator.cli.main import main

__all__ = ["main"]
