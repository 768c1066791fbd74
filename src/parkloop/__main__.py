"""``python -m parkloop``: the same as the ``parkloop`` command."""

from parkloop.cli import main

if __name__ == "__main__":  # not when a worker process imports the parent's main module
    main()
