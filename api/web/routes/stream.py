"""``GET /stream``: server-sent events of every change (new event, reclassification, assignment, ETR, restoration)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import StreamingResponse

from api.web.auth import Principal, require

router = APIRouter(tags=["live"])
STREAM = require("dispatcher", "admin", "crew", "integration")


@router.get("/stream", summary="Server-sent events; reconnect with Last-Event-ID to resume",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}, "description": "an SSE stream"}})
async def stream(request: Request, _: Principal = Depends(STREAM),
                 last_event_id: Annotated[str | None, Header(max_length=20)] = None):
    state = request.app.state.oms
    last = int(last_event_id) if last_event_id and last_event_id.isdigit() else None
    return StreamingResponse(state.broker.subscribe(last, state.settings.sse_keepalive_s),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
