"""``python -m parkloop``: the same as the ``parkloop`` command."""

from parkloop.cli import main

main()
