"""One error tree: every error parkloop raises on purpose is in ``parkloop.errors``, drawn at
its top under its real parent; the HTTP layer answers each through one table."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import pytest

import parkloop
from parkloop import errors
from parkloop.errors import ParkloopError
from parkloop.serve.errors import HTTP_ANSWERS, http_answer

SKIP = ("parkloop.serve.app",)  # imports fine, but only for a server (reads its environment)


def all_errors() -> set[type[ParkloopError]]:
    found: set[type[ParkloopError]] = set()
    for info in pkgutil.walk_packages(parkloop.__path__, "parkloop."):
        if info.name.startswith(SKIP) or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        found |= {c for _, c in inspect.getmembers(module, inspect.isclass)
                  if issubclass(c, ParkloopError)}
    return found


def drawing() -> dict[str, str | None]:
    """Each class drawn at the top of errors.py -> the class drawn as its parent."""
    parents: dict[str, str | None] = {}
    stack: list[str] = []
    for line in (errors.__doc__ or "").splitlines():
        m = re.match(r"^ {4}((?:[│ ] {3})*)(?:[├└]── )?([A-Z]\w+)", line)
        if not m or ("──" not in line and m.group(2) != "ParkloopError"):
            continue
        depth = len(m.group(1)) // 4 + (1 if "──" in line else 0)
        del stack[depth:]
        parents[m.group(2)] = stack[-1] if stack else None
        stack.append(m.group(2))
    return parents


def test_every_error_is_in_errors_py_and_drawn_under_its_parent() -> None:
    drawn = drawing()
    assert drawn["ParkloopError"] is None
    for cls in all_errors():
        assert cls.__module__ == "parkloop.errors", f"{cls.__name__} lives in {cls.__module__}"
        assert cls.__name__ in drawn, f"{cls.__name__} is not drawn at the top of errors.py"
        if cls is not ParkloopError:
            assert drawn[cls.__name__] == cls.__bases__[0].__name__, cls.__name__
    assert set(drawn) == {c.__name__ for c in all_errors()}, "the drawing names a ghost"


@pytest.mark.parametrize("cls", sorted(HTTP_ANSWERS, key=lambda c: c.__name__),
                         ids=lambda c: c.__name__)
def test_each_row_of_the_http_table_answers_its_class(cls: type[ParkloopError]) -> None:
    exc = cls.__new__(cls)
    Exception.__init__(exc, "x")
    assert http_answer(exc) == HTTP_ANSWERS[cls]


def test_an_error_without_a_row_takes_its_nearest_parents() -> None:
    assert http_answer(errors.SourceError("x")) == HTTP_ANSWERS[errors.RejectedInput]
    assert http_answer(errors.StoreLocked("x")) == (500, "internal")
    assert http_answer(errors.ApiError(409, "loop_running", "x")) == (409, "loop_running")
