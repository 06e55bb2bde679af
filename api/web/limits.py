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
                    return await _reject(send, 400, "bad_request", "Content-Length is not a number")
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

    @staticmethod
    async def _too_large(send, max_bytes: int):
        await _reject(send, 413, "payload_too_large", f"request body is larger than {max_bytes} bytes")


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


# ------------------------------------------------------------------------------------------ the edge guard
def _control(text: str) -> bool:
    from api.web.schemas import CONTROL

    return CONTROL.search(text) is not None


def client_address(scope, trusted_proxies: frozenset[str]) -> str | None:
    """The caller's address: the peer, or — only when the peer is a proxy named in settings — the nearest address
    in ``X-Forwarded-For`` that is not itself a named proxy (the one a client cannot forge)."""
    peer = scope.get("client")
    host = peer[0] if peer else None
    if host not in trusted_proxies:
        return host
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-for":
            hops = [h.strip() for h in value.decode("latin-1").split(",") if h.strip()]
            for hop in reversed(hops):
                if hop not in trusted_proxies:
                    return hop[:45]  # an IPv6 address at most; keys stay short
    return host


class EdgeGuard:
    """ASGI middleware, outermost: everything refused before any route (or the storm fast path) runs.

    - the client address is taken from ``X-Forwarded-For`` only when the peer is a proxy named in settings;
    - control characters (NUL ...) in the path or query string get 422 (PostgreSQL refuses NUL with an error);
    - a client (address) may have at most ``max_in_flight`` requests at once (429);
    - anonymous callers share a per-address allowance across every route (429), so no public route is unmetered;
    - a request body must arrive within ``body_timeout_s`` (408), so a body that never ends frees its slot.
    """

    def __init__(self, app, settings, limiter: RateLimiter, body_overrides: dict[str, float] | None = None) -> None:
        self.app, self.settings, self.limiter = app, settings, limiter
        self.trusted = frozenset(settings.trusted_proxies)
        self.body_overrides = body_overrides or {}
        self.in_flight: dict[str, int] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        host = client_address(scope, self.trusted)
        if host != (scope.get("client") or (None,))[0]:
            scope = {**scope, "client": (host, 0)}
        query = scope.get("query_string", b"")
        if _control(scope.get("path", "")) or (query and _control(_unquote(query))):
            return await _reject(send, 422, "invalid", "control characters (such as NUL) are not allowed in the "
                                                       "path or query string")
        s = self.settings
        key = host or "unknown"
        if not any(name == b"authorization" for name, _ in scope.get("headers", ())):
            try:
                self.limiter.take(f"public:{key}", s.public_rate_limit_per_minute, s.public_rate_limit_burst)
            except ApiError as exc:
                return await _reject(send, 429, exc.code, exc.message, exc.headers)
        if self.in_flight.get(key, 0) >= s.max_requests_per_client:
            return await _reject(send, 429, "rate_limited", f"at most {s.max_requests_per_client} requests at once "
                                                            "from one client", {"Retry-After": "1"})
        self.in_flight[key] = self.in_flight.get(key, 0) + 1
        try:
            await self._with_body_deadline(scope, receive, send)
        finally:
            left = self.in_flight[key] - 1
            if left:
                self.in_flight[key] = left
            else:
                del self.in_flight[key]

    async def _with_body_deadline(self, scope, receive, send):
        import asyncio

        timeout = self.body_overrides.get(scope.get("path", ""), self.settings.body_timeout_s)
        deadline = asyncio.get_running_loop().time() + timeout
        body_done, answered = False, False

        async def timed_receive():
            nonlocal body_done, answered
            if body_done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - asyncio.get_running_loop().time()))
            except TimeoutError:
                if not answered:
                    answered = True
                    await _reject(send, 408, "request_timeout",
                                  f"the request body did not arrive within {timeout:g} s")
                return {"type": "http.disconnect"}
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def guarded_send(message):
            nonlocal answered
            if answered and message["type"].startswith("http.response"):
                return  # the 408 went out already
            await send(message)

        await self.app(scope, timed_receive, guarded_send)


def _unquote(raw: bytes) -> str:
    from urllib.parse import unquote_plus

    return unquote_plus(raw.decode("latin-1"), encoding="utf-8", errors="replace")


async def _reject(send, status: int, code: str, message: str, headers: dict[str, str] | None = None):
    body = json.dumps(error_body(status, code, message)).encode()
    extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *extra]})
    await send({"type": "http.response.body", "body": body})


# ---------------------------------------------------------------------------------------- security headers
#: The maps (folium) and the reports inline their scripts and styles; everything else is our own origin.
CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob: https:; connect-src 'self'; font-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
#: Swagger UI and ReDoc, served by the app itself (api.web.docs): nothing from another host. Their pages start
#: the UI with an inline script, and ReDoc runs a worker from a blob.
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
ALWAYS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]


class SecurityHeaders:
    """ASGI middleware: nosniff and Referrer-Policy on every answer; CSP (with ``frame-ancestors``) and
    X-Frame-Options on every HTML page."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        docs = scope.get("path", "") in ("/docs", "/redoc", "/docs/oauth2-redirect")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k not in (b"x-content-type-options",
                                                                                     b"referrer-policy")]
                headers += ALWAYS
                if any(k == b"content-type" and v.startswith(b"text/html") for k, v in headers):
                    headers += [(b"content-security-policy", (DOCS_CSP if docs else CSP).encode()),
                                (b"x-frame-options", b"DENY")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# ------------------------------------------------------------------------------------- connection protocol
def guarded_protocol(settings):
    """A uvicorn HTTP protocol class (pass as ``http=``) that closes a connection whose request headers do not
    arrive within ``settings.header_timeout_s`` (uvicorn itself waits for ever) and refuses more than
    ``settings.max_connections_per_client`` open connections from one address (proxies named in
    ``settings.trusted_proxies`` are exempt: every client arrives through them)."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    header_timeout, cap = settings.header_timeout_s, settings.max_connections_per_client
    trusted = frozenset(settings.trusted_proxies)
    open_by_client: dict[str, int] = {}

    class GuardedProtocol(AutoHTTPProtocol):
        _timer = None
        _counted: str | None = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            host = self.client[0] if self.client else None
            if host is not None and host not in trusted:
                if open_by_client.get(host, 0) >= cap:
                    transport.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n"
                                    b"connection: close\r\n\r\n")
                    transport.close()
                    return
                open_by_client[host] = open_by_client.get(host, 0) + 1
                self._counted = host
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._awaiting_headers():
                if self._timer is None:
                    self._arm()
            elif self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def connection_lost(self, exc) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._counted is not None:
                left = open_by_client.get(self._counted, 1) - 1
                if left > 0:
                    open_by_client[self._counted] = left
                else:
                    open_by_client.pop(self._counted, None)
                self._counted = None
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()  # the keep-alive timer now guards the idle connection
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _awaiting_headers(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def _arm(self) -> None:
            self._timer = self.loop.call_later(header_timeout, self._headers_too_slow)

        def _headers_too_slow(self) -> None:
            self._timer = None
            if self._awaiting_headers() and not self.transport.is_closing():
                self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n"
                                     b"connection: close\r\n\r\n")
                self.transport.close()

    return GuardedProtocol
