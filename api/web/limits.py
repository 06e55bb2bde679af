"""Protection at the edge: a request-body size limit (ASGI middleware) and per-client token-bucket rate limits."""

from __future__ import annotations

import json
import math
import threading
import time

from api.errors import ApiError, error_body


class BodyLimitMiddleware:
    """Answer 413 to bodies over ``max_bytes``, by Content-Length or while streaming (chunked uploads)."""

    def __init__(self, app, max_bytes: int, overrides: dict[str, int] | None = None) -> None:
        self.app, self.default_max, self.overrides = app, max_bytes, overrides or {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        max_bytes = self.overrides.get(scope.get("path", ""), self.default_max)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    return await self._reject(send, 400, "bad_request", "Content-Length is not a number")
                if length > max_bytes:
                    return await self._too_large(send, max_bytes)
                return await self.app(scope, receive, send)  # declared length within the limit
        if scope.get("method") in ("GET", "HEAD", "DELETE", "OPTIONS"):
            return await self.app(scope, receive, send)
        # No Content-Length (chunked upload): read the body here, bounded, then hand it on.
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # client went away
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > max_bytes:
                return await self._too_large(send, max_bytes)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send, max_bytes: int):
        await self._reject(send, 413, "payload_too_large", f"request body is larger than {max_bytes} bytes")

    @staticmethod
    async def _reject(send, status: int, code: str, message: str):
        body = json.dumps(error_body(status, code, message)).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class RateLimiter:
    """Token buckets keyed by client: ``rate`` requests per minute refilled continuously, ``burst`` at most."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, per_minute: float, burst: int, cost: float = 1.0) -> None:
        """Spend ``cost`` tokens or raise a 429 saying when to retry."""
        now = time.monotonic()
        rate = per_minute / 60.0
        with self._lock:
            tokens, last = self._buckets.get(key, (float(burst), now))
            tokens = min(float(burst), tokens + (now - last) * rate)
            if tokens < cost:
                self._buckets[key] = (tokens, now)
                wait = math.ceil((cost - tokens) / rate)
                raise ApiError(429, "rate_limited", f"too many requests from this client; retry in {wait} s",
                               headers={"Retry-After": str(wait)})
            self._buckets[key] = (tokens - cost, now)
            if len(self._buckets) > 200_000:  # forget idle clients rather than grow without bound
                self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 600}
