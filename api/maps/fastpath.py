"""The members' map on the event loop: what every viewer fetches, answered from memory without the framework.

In a storm thousands of members open the public map at once. Each page view is four requests (page, live GeoJSON,
roads, basemap) and a poll every 30 s, and every body is already built, compressed and tagged in memory
(:class:`api.maps.router.MapService`); yet through FastAPI each one cost routing, dependency solving, the
framework's own middleware and a hand-off to the thread pool and back, all of it holding the GIL that the intake
path and the engine need too. :class:`MapFastPath` answers those ``GET`` requests itself with
:meth:`MapService.ready <api.maps.router.MapService.ready>` and :func:`api.maps.router.negotiate`, the same
bodies, ETags, 304s and headers as the routes, and hands every other request on unchanged: one not yet built, a
live refresh that is due (the route builds it in a thread), a new network, any other method or path.

Mount it inside the service's edge middleware, so that rate limits, connection caps and security headers apply
to it exactly as to the routes (see :func:`api.web.app.create_app`).
"""

from __future__ import annotations

from api.maps.router import MapService, negotiate


class MapFastPath:
    """ASGI middleware: ``GET {prefix}/public``, ``/public.geojson``, ``/roads.geojson``, ``/basemap.geojson``
    and ``/assets/...`` from ``service``'s memory when they are ready; everything else to ``app``."""

    def __init__(self, app, service: MapService, prefix: str = "/maps") -> None:
        self.app, self.service, self.prefix = app, service, prefix

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"].startswith(self.prefix):
            ready = self.service.ready(scope["path"][len(self.prefix) :])
            if ready is not None:
                served, media_type, cache_control = ready
                # the first of each, as Starlette's Headers.get reads them
                accept_encoding = if_none_match = None
                for name, value in scope["headers"]:
                    if name == b"accept-encoding" and accept_encoding is None:
                        accept_encoding = value.decode("latin-1")
                    elif name == b"if-none-match" and if_none_match is None:
                        if_none_match = value.decode("latin-1")
                status, headers, content = negotiate(served, cache_control, accept_encoding, if_none_match)
                await send(
                    {
                        "type": "http.response.start",
                        "status": status,
                        "headers": raw_headers(status, headers, media_type, content),
                    }
                )
                await send({"type": "http.response.body", "body": content})
                return
        await self.app(scope, receive, send)


def raw_headers(
    status: int, headers: dict[str, str], media_type: str, content: bytes
) -> list[tuple[bytes, bytes]]:
    """The header list Starlette's ``Response`` sends for these arguments (content-length and content-type, the
    latter with a charset for text), so the fast path's answers are the routes' to the byte."""
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    if status == 304:
        return raw
    if media_type.startswith("text/") and "charset=" not in media_type.lower():
        media_type += "; charset=utf-8"
    raw += [
        (b"content-length", str(len(content)).encode("latin-1")),
        (b"content-type", media_type.encode("latin-1")),
    ]
    return raw
