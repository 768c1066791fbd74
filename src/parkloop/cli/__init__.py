"""The ``parkloop`` command line: parse, call a plain function, format. Nothing else lives here."""

from parkloop.cli.app import app, main

__all__ = ["app", "main"]
