"""The storm path: ``POST /reports`` and ``POST /ami`` served straight from ASGI.

In a storm these two routes carry nearly all traffic, and FastAPI's per-request routing, dependency solving and
telemetry cost more CPU than the work itself (validation is one Rust call, storage one group commit). This
middleware answers them directly with the *same* functions the FastAPI routes call (authentication, role check,
rate limit, validation, storage, error bodies), so behaviour and the OpenAPI document are unchanged; it only skips
the framework's overhead. Everything else goes on to FastAPI.

It also sees every answer leave: a 503 (intake or database unavailable) gets ``Retry-After`` so that clients and
load balancers back off and come back instead of hammering or giving up.
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
            return await self.app(scope, receive, self._retry_after(send))
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
            if isinstance(exc.__cause__, ApiError):  # the writer's own answer (422 refused, 503 not stored)
                exc = exc.__cause__
            response = error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)
        except RequestValidationError as exc:
            response = validation_response(exc)
        except Exception:  # noqa: BLE001 - same promise as everywhere: a JSON error body, never a traceback
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            response = error_response(500, "internal", "internal error; it has been logged")
        await response(scope, receive, self._retry_after(send))

    def _retry_after(self, send):
        seconds = str(self.state.settings.retry_after_s).encode()

        async def sending(message):
            if message["type"] == "http.response.start" and message["status"] == 503:
                headers = list(message.get("headers", ()))
                if not any(k.lower() == b"retry-after" for k, _ in headers):
                    message = {**message, "headers": [*headers, (b"retry-after", seconds)]}
            await send(message)

        return sending
