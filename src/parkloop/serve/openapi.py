"""The OpenAPI document: what FastAPI derives, plus the plain Starlette hot paths (health,
readiness, the car answer), documented from the same response models, and the bearer scheme."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from parkloop.serve.middleware import JSON
from parkloop.serve.models import ID, CarAnswerOut, Error, Health, Ready


def document_plain_routes(app: FastAPI) -> None:
    """Put the plain endpoints into the OpenAPI document, from their response models."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = get_openapi(title=app.title, version=app.version, description=app.description,
                           routes=app.routes)
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        for model in (CarAnswerOut, Health, Ready, Error):
            schemas[model.__name__] = model.model_json_schema(
                ref_template="#/components/schemas/{model}")

        def ok(model: type[BaseModel], *others: tuple[int, type[BaseModel]]
               ) -> dict[str, Any]:
            out = {"200": {"description": "OK", "content": {JSON: {"schema": {
                "$ref": f"#/components/schemas/{model.__name__}"}}}}}
            for status, m in others:
                out[str(status)] = {"description": m.__doc__ or m.__name__, "content": {
                    JSON: {"schema": {"$ref": f"#/components/schemas/{m.__name__}"}}}}
            return out

        spec["paths"]["/healthz"] = {"get": {
            "summary": "Alive (cheap, no auth)", "operationId": "healthz", "security": [],
            "tags": ["ops"], "responses": ok(Health)}}
        spec["paths"]["/readyz"] = {"get": {
            "summary": "Ready to answer (503 while the raw log is replayed)",
            "operationId": "readyz", "tags": ["ops"], "security": [],
            "responses": ok(Ready, (503, Ready))}}
        spec["paths"]["/v1/devices/{device_id}/car"] = {"get": {
            "summary": "Where the device's car is parked", "operationId": "car",
            "tags": ["devices"],
            "description": CarAnswerOut.__doc__,
            "parameters": [{"name": "device_id", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "security": [{"bearer": []}],
            "responses": ok(CarAnswerOut, (401, Error), (404, Error), (503, Error))}}
        for operations in spec["paths"].values():  # one id rule, documented everywhere
            for operation in operations.values():
                for parameter in operation.get("parameters", []):
                    if parameter["name"] == "device_id":
                        parameter["schema"].update(pattern=ID, maxLength=128)
        spec["components"]["securitySchemes"] = {"bearer": {"type": "http",
                                                            "scheme": "bearer"}}
        spec["security"] = [{"bearer": []}]
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


__all__ = ["document_plain_routes"]
