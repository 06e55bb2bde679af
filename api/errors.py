"""One error body for every failure: ``{"error": {"status", "code", "message", "details"}}``.

Validation errors list each bad field with its location (``body.lat``) and what is wrong; no input produces a 500
(an unexpected exception is logged and answered with a 500 body of the same shape that names no internals).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

log = logging.getLogger("oms.api")

CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
         409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type", 422: "invalid",
         408: "request_timeout", 429: "rate_limited", 500: "internal", 503: "unavailable"}


class ApiError(Exception):
    """Raise from routes and services: becomes a response with the standard error body."""

    def __init__(self, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details, self.headers = status, code, message, details, headers


def error_body(status: int, code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict:
    return {"error": {"status": status, "code": code, "message": message, "details": details or []}}


def error_response(status: int, code: str, message: str, details=None, headers=None) -> JSONResponse:
    return JSONResponse(error_body(status, code, message, details), status_code=status, headers=headers)


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        out.append({"field": loc, "message": err.get("msg", "invalid"), "type": err.get("type", "")})
    return out


def validation_response(exc: RequestValidationError) -> JSONResponse:
    """400 for JSON that does not parse, else 422 listing each bad field."""
    details = _field_errors(exc)
    if any(d["type"] == "json_invalid" for d in details):
        return error_response(400, "bad_request", "request body is not valid JSON", details)
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
    return error_response(422, "invalid", f"invalid request: {summary}", details)


def parse_json(model: type[BaseModel], raw: bytes) -> BaseModel:
    """Validate a JSON body against ``model``; errors become the same 400/422 bodies as FastAPI's own."""
    try:
        return model.model_validate_json(raw or b"null")
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e.get("loc", ()))} for e in exc.errors(include_url=False)]
        if any(e["type"] == "json_invalid" for e in errors):
            raise RequestValidationError(errors) from None
        if not raw or raw.strip() in (b"null", b""):
            errors = [{"loc": ("body",), "msg": "a JSON body is required", "type": "missing"}]
        raise RequestValidationError(errors) from None


def json_body(model: type[BaseModel], description: str) -> dict:
    """``openapi_extra`` documenting a JSON request body for routes that parse it themselves."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {"requestBody": {"required": True, "description": description,
                            "content": {"application/json": {"schema": schema}}},
            "x-components": defs}


def allowed_methods(request: Request) -> list[str] | None:
    """Every method the OpenAPI document lists for this request's path (None for a path it does not describe)."""
    import re

    path, found = request.url.path, []
    for template, ops in request.app.openapi().get("paths", {}).items():
        parts = re.split(r"(\{[^}]+\})", template)
        pattern = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
        if re.fullmatch(pattern, path):
            found.append((template.count("{"), ops))  # /crews/roster before /crews/{crew_id}
    if not found:
        return None
    ops = min(found, key=lambda f: f[0])[1]
    return sorted(m.upper() for m in ops if m in ("get", "put", "post", "delete", "patch", "head", "options"))


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError):
        return validation_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405 and (methods := allowed_methods(request)):  # Starlette names one route's only
            headers = {**(headers or {}), "Allow": ", ".join(methods)}
        return error_response(exc.status_code, code, message, headers=headers)

    @app.exception_handler(ClientDisconnect)
    async def _gone(_request: Request, _exc: ClientDisconnect):
        # the client left (or its body missed its deadline and was answered 408): nobody reads this
        return error_response(400, "bad_request", "the client disconnected before its request was read")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal", "internal error; it has been logged")
