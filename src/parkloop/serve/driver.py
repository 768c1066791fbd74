"""The driver's page: ``/app/`` (``serve/web/app/``, public files, no data in them), made for
a phone, and the one route it needs beyond the device routes: ``GET /v1/me``, which device a
token belongs to (see docs/app.md).

Everything else the page does goes through the device routes every phone uses, with the
device's own token: ``GET .../car``, ``GET .../leg-ends``, ``POST .../feedback`` and
``POST .../events``. It reuses the console's vendored Leaflet (``/console/vendor/``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from pydantic import BaseModel, Field
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from parkloop.errors import ApiError
from parkloop.serve.tokens import token_digest

if TYPE_CHECKING:
    from parkloop.serve.service import Service

PAGE = Path(__file__).parent / "web" / "app"
"""the page: index.html, its script modules and styles"""
LINK_PATH = "/app/"
"""where the page is served; `parkloop device token ID --link URL` points here"""


class MeOut(BaseModel):
    """The device a token belongs to."""

    device_id: str = Field(description="the device this token reads and writes for")


def add_driver(app: FastAPI, service: Service) -> None:
    """Mount the driver's page at ``/app/`` and add ``GET /v1/me``."""

    @app.get("/v1/me", response_model=MeOut, tags=["devices"],
             responses={403: {"description": "the admin token (it is no device)"}})
    async def me(request: Request) -> dict[str, str]:
        """Which device this token belongs to: what the driver's page signs in with."""
        token = _bearer(request.headers.get("authorization"))
        if token is None:
            raise ApiError(401, "unauthorized",
                           "send a valid token as `Authorization: Bearer TOKEN`")
        device = service.device_of(token_digest(token))
        if device is not None:
            return {"device_id": device}
        if service.tokens.is_admin(token):
            raise ApiError(403, "forbidden", "this is the admin token; the driver's page "
                           "needs a device's token (`parkloop device token DEVICE_ID`)")
        raise ApiError(401, "unauthorized",
                       "send a valid token as `Authorization: Bearer TOKEN`")

    app.mount("/app", _Page(directory=PAGE, html=True), name="app")

    @app.get("/app", include_in_schema=False)
    async def app_slash() -> Response:
        return RedirectResponse(LINK_PATH)


CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
"""the page's Content-Security-Policy: its code, styles, images and calls come from this
server only, so nothing injected could send the token kept in the browser elsewhere
(Leaflet sets inline styles, hence 'unsafe-inline' for styles alone)"""


class _Page(StaticFiles):
    """The page's files, with :data:`CSP` and no referrer."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["content-security-policy"] = CSP
        response.headers["referrer-policy"] = "no-referrer"
        response.headers["x-content-type-options"] = "nosniff"
        return response


def page_link(base_url: str, token: str) -> str:
    """The address that signs a phone in to the driver's page: the token rides in the
    fragment (after ``#``), which browsers never send to a server, so it reaches no log.

    >>> page_link("https://192.168.1.20:8443", "plk_abc")
    'https://192.168.1.20:8443/app/#token=plk_abc'
    >>> page_link("https://parkloop.example/", "plk_x")
    'https://parkloop.example/app/#token=plk_x'
    """
    return f"{base_url.rstrip('/')}{LINK_PATH}#token={token}"


def _bearer(authorization: str | None) -> str | None:
    if not authorization or authorization[:7].lower() != "bearer ":
        return None
    token = authorization[7:].strip()
    return token if token and len(token) <= 512 else None


__all__ = ["CSP", "LINK_PATH", "PAGE", "MeOut", "add_driver", "page_link"]
