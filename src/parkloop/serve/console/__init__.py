"""The operator console: admin-only JSON routes under ``/v1/console`` (:mod:`.routes`), what
they read (:mod:`.data`), their documented answers (:mod:`.models`); the page is
``serve/web/``."""

from parkloop.serve.console.routes import add_console

__all__ = ["add_console"]
