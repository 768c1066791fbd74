"""Who a request is, and what it may do.

``Authorization: Bearer TOKEN``. A device token reads and writes its own device only; the
admin token everything. A missing or unknown token gets 401; another device's token gets 404
whether or not the device exists, so nothing leaks about other devices.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from parkloop.errors import ApiError
from parkloop.serve.tokens import token_digest

if TYPE_CHECKING:
    from parkloop.serve.service import Service

ADMIN = "\x00admin"
"""who an admin token is (not a valid device id, so it never clashes with one)"""

UNAUTHORIZED = (401, "unauthorized", "send a valid token as `Authorization: Bearer TOKEN`")
NOT_FOUND = (404, "not_found", "no such device for this token")
FORBIDDEN = (403, "forbidden", "this needs the admin token")


def who(service: Service, authorization: str | None) -> str | None:
    """The device a bearer token belongs to, :data:`ADMIN`, or None."""
    if not authorization or authorization[:7].lower() != "bearer ":
        return None
    token = authorization[7:].strip()
    if not token or len(token) > 512:
        return None
    digest = token_digest(token)
    device = service.device_of(digest, recheck=False)
    if device is not None:
        return device
    if service.tokens.is_admin(token):
        return ADMIN
    return service.device_of(digest)  # a token issued a moment ago, or none


def may_read(service: Service, who: str | None, device_id: str) -> None:
    """Raise unless ``who`` may use ``device_id``: 401 without a valid token, 404 for another
    device's token (exists or not), 404 for the admin asking about an unknown device."""
    if who is None:
        raise ApiError(*UNAUTHORIZED)
    if who == ADMIN:
        if not service.device_known(device_id):
            raise ApiError(404, "not_found", f"no device {device_id!r}")
        return
    if who != device_id:
        raise ApiError(*NOT_FOUND)


def may_write(who: str | None, device_id: str) -> None:
    """Raise unless ``who`` may send events for ``device_id``: its own token, or the admin's
    (which may send for a device that has none yet)."""
    if who is None:
        raise ApiError(*UNAUTHORIZED)
    if who != ADMIN and who != device_id:
        raise ApiError(*NOT_FOUND)


def admin_only(who: str | None) -> None:
    """Raise unless ``who`` is the admin: 401 without a valid token, 403 for a device's."""
    if who is None:
        raise ApiError(*UNAUTHORIZED)
    if who != ADMIN:
        raise ApiError(*FORBIDDEN)


__all__ = ["ADMIN", "FORBIDDEN", "NOT_FOUND", "UNAUTHORIZED", "admin_only", "may_read",
           "may_write", "who"]
