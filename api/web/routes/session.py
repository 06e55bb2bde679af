"""Browser sessions for the dispatcher map: ``GET /session`` (a sign-in form), ``POST /session`` (a token in the
body, checked, becomes an HttpOnly, Secure, SameSite=Strict cookie scoped to ``/maps``), ``DELETE /session``.

The token travels in a body, never a URL (URLs land in logs, histories and Referer headers), and no cookie is
ever set from a value that has not been checked as a live dispatcher or admin token.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import Field

from api.errors import json_body, parse_json
from api.web.auth import check_role, resolve_principal
from api.web.maps_provider import DISPATCHER_ROLES, TOKEN_COOKIE
from api.web.routes.public import rate_limit
from api.web.schemas import In

router = APIRouter(tags=["session"])
#: A map session lasts a shift; the token itself may live longer (and its revocation ends the session at once).
SESSION_SECONDS = 12 * 3600
NO_STORE = {"Cache-Control": "no-store"}
FORM = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Sign in: dispatcher map</title></head>
<body><h1>Dispatcher map</h1><form method="post" action="/session">
<label>API token <input name="token" type="password" autocomplete="off" required maxlength="200"></label>
<button type="submit">Open the map</button></form></body></html>"""


class SessionIn(In):
    token: str = Field(min_length=8, max_length=200, pattern=r"^[A-Za-z0-9_-]+$")


@router.get("/session", response_class=HTMLResponse, summary="Sign-in form for the dispatcher map")
def sign_in_form() -> HTMLResponse:
    return HTMLResponse(FORM, headers=NO_STORE)


@router.post("/session", summary="Open a dispatcher map session: the token becomes a /maps cookie",
             openapi_extra=json_body(SessionIn, "a dispatcher or admin token (JSON, or a form field `token`)"),
             responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}},
                        303: {"description": "form sign-in: on to the dispatcher map"}})
async def open_session(request: Request) -> Response:
    state = request.app.state.oms
    raw = await request.body()
    form = not request.headers.get("content-type", "").startswith("application/json")
    if form:  # the sign-in form posts application/x-www-form-urlencoded
        raw = json.dumps({k: v[0] for k, v in parse_qs(raw.decode(errors="replace")).items()}).encode()
    body = parse_json(SessionIn, raw)
    host = request.client.host if request.client else None
    # the anonymous allowance: a sign-in form must not be a free token-guessing oracle
    rate_limit(state, await resolve_principal(state, None, host))
    principal = check_role(await resolve_principal(state, f"Bearer {body.token}", host), DISPATCHER_ROLES)
    response: Response = RedirectResponse("/maps/dispatcher", status_code=303, headers=NO_STORE) if form else \
        JSONResponse({"name": principal.name, "role": principal.role}, headers=NO_STORE)
    response.set_cookie(TOKEN_COOKIE, body.token, max_age=SESSION_SECONDS, path="/maps", secure=True,
                        httponly=True, samesite="strict")
    return response


@router.delete("/session", status_code=204, summary="Close the map session (forget the cookie)")
def close_session() -> Response:
    response = Response(status_code=204, headers=NO_STORE)
    response.delete_cookie(TOKEN_COOKIE, path="/maps", secure=True, httponly=True, samesite="strict")
    return response
