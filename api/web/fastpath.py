"""The storm path: ``POST /reports`` and ``POST /ami`` served straight from ASGI.

In a storm these two routes carry nearly all traffic, and FastAPI's per-request routing, dependency solving and
telemetry cost more CPU than the work itself (validation is one Rust call, storage one group commit). This
middleware answers them directly with the *same* functions the FastAPI routes call (authentication, role check,
rate limit, validation, storage, error bodies), so behaviour and the OpenAPI document are unchanged; it only skips
the framework's overhead. Everything else goes on to FastAPI.
"""

from __future__ import annotations

import logging

from fastapi.exceptions import RequestValidationError
from starlette.datastructures import Headers

from api.errors import ApiError, error_response, validation_response
from api.web.auth import check_role, resolve_principal

log = logging.getLogger("oms.api")


class IntakeFastPath:
    def __init__(self, app, state, routes: dict[tuple[str, str], tuple[tuple[str, ...], object]]) -> None:
        self.app, self.state, self.routes = app, state, routes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route = self.routes.get((scope["method"], scope["path"]))
        if route is None:
            return await self.app(scope, receive, send)
        roles, handler = route
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        headers = Headers(scope=scope)
        client = scope.get("client")
        try:
            principal = await resolve_principal(self.state, headers.get("authorization"),
                                                client[0] if client else None)
            check_role(principal, roles)
            response = await handler(self.state, principal, b"".join(chunks), headers)
        except ApiError as exc:
            response = error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)
        except RequestValidationError as exc:
            response = validation_response(exc)
        except Exception:  # noqa: BLE001 - same promise as everywhere: a JSON error body, never a traceback
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            response = error_response(500, "internal", "internal error; it has been logged")
        await response(scope, receive, send)
