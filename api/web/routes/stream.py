"""``GET /stream``: server-sent events of every change (new event, reclassification, assignment, ETR, restoration)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import StreamingResponse

from api.web.auth import Principal, require

router = APIRouter(tags=["live"])
STREAM = require("dispatcher", "admin", "crew", "integration")
#: Who may see where a household is: an event with no device is placed at its one service point, a home.
SEES_HOUSEHOLDS = ("dispatcher", "admin")


def without_households(chunk: str) -> str:
    """An SSE chunk with the coordinates of device-less (single household) events taken out."""
    if not chunk.startswith("id: ") or '"lat"' not in chunk:
        return chunk
    head, sep, rest = chunk.partition("\ndata: ")
    data = json.loads(rest)
    if data.get("device_id") is not None or "lat" not in data or "id" not in data or "class" not in data:
        return chunk  # a device's place, or not an event (crews report their own position)
    data["lat"] = data["lon"] = None
    return f"{head}{sep}{json.dumps(data)}\n\n"


async def redacted(chunks: AsyncIterator[str]) -> AsyncIterator[str]:
    async for chunk in chunks:
        yield without_households(chunk)


@router.get("/stream", summary="Server-sent events; reconnect with Last-Event-ID to resume",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}, "description": "an SSE stream"}})
async def stream(request: Request, who: Principal = Depends(STREAM),
                 last_event_id: Annotated[str | None, Header(max_length=20)] = None):
    state = request.app.state.oms
    last = int(last_event_id) if last_event_id and last_event_id.isdigit() else None
    chunks = state.broker.subscribe(last, state.settings.sse_keepalive_s)
    return StreamingResponse(chunks if who.role in SEES_HOUSEHOLDS else redacted(chunks),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
