"""``GET /``: a small start page with the links a person needs (public map, dispatcher sign-in, API docs)."""

from __future__ import annotations

import html

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["public"])

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title}</title><style>
body{{font:16px/1.5 system-ui,sans-serif;margin:0 auto;padding:1.2em;max-width:36em;color:#1a1a1a}}
h1{{font-size:1.5em}}ul{{list-style:none;padding:0}}li{{margin:0 0 .8em}}
a{{display:block;padding:.7em 1em;border:1px solid #888;border-radius:6px;color:#0b4f9c;text-decoration:none}}
a:hover,a:focus{{background:#eef4fb;outline:2px solid #0b4f9c}}small{{display:block;color:#444}}
</style></head><body><main>
<h1>{title}</h1>
<nav aria-label="Start"><ul>
<li><a href="/maps/public">Public outage map<small>Where the power is out, and when it should be back</small></a></li>
<li><a href="/session">Dispatcher console<small>Sign in with your dispatcher account</small></a></li>
<li><a href="/docs">API documentation<small>Reports, events, crews, plans (OpenAPI)</small></a></li>
</ul></nav></main></body></html>
"""


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def landing(request: Request) -> HTMLResponse:
    page = request.app.state.maps.page if hasattr(request.app.state, "maps") else None
    title = html.escape(getattr(page, "utility_name", "") or "Outage management")
    return HTMLResponse(PAGE.format(title=title))
