"""The API's error: a status, a stable code and one line for a person; answered as
``{"error": CODE, "message": LINE}``."""

from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


__all__ = ["ApiError"]
