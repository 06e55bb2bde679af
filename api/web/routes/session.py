"""Browser sign-in: ``GET /session`` (the form), ``POST /session`` (name and password: a session cookie),
``POST /session/sign-out``, and ``DELETE /session``.

The session cookie is random, HttpOnly, Secure, SameSite=Strict and stored hashed (:mod:`api.web.auth`); the
sign-in and sign-out forms carry CSRF tokens (sign-in: a double-submit cookie, as there is no session yet;
afterwards: the session's own token). Integrations keep their bearer tokens; for them ``POST /session`` with a
JSON ``{"token": ...}`` still opens the token's map session (a cookie scoped to ``/maps``). Tokens travel in
bodies or headers, never in URLs.
"""

from __future__ import annotations

import hmac
import json
import secrets
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from api.console import signin_html
from api.errors import ApiError, json_body, parse_json
from api.web.auth import (
    SESSION_COOKIE,
    SESSION_SECONDS,
    check_csrf,
    check_role,
    close_web_session,
    open_web_session,
    resolve_principal,
)
from api.web.maps_provider import DISPATCHER_ROLES, TOKEN_COOKIE
from api.web.routes.public import rate_limit
from api.web.schemas import In

router = APIRouter(tags=["session"])
NO_STORE = {"Cache-Control": "no-store"}
#: The sign-in form's double-submit CSRF cookie (there is no session to tie a token to yet).
SIGNIN_COOKIE = "oms_signin"
#: Sign-ins per user name (on top of the per-address allowance): slows guessing one account from many hosts.
NAME_ATTEMPTS_PER_MINUTE, NAME_ATTEMPTS_BURST = 10.0, 10
COOKIE = {"secure": True, "httponly": True, "samesite": "strict"}


class SessionIn(In):
    token: str = Field(min_length=8, max_length=200, pattern=r"^[A-Za-z0-9_-]+$")


class SignIn(In):
    username: str = Field(min_length=1, max_length=120)
    password: str = Field(min_length=1, max_length=200)
    csrf: str = Field(min_length=1, max_length=100)


def _title(request: Request) -> str:
    page = getattr(request.app.state, "maps", None)
    return getattr(getattr(page, "page", None), "utility_name", "") or "Outage management"


def _form_page(request: Request, status: int = 200, error: str = "", name: str = "") -> HTMLResponse:
    csrf = request.cookies.get(SIGNIN_COOKIE)
    if not csrf or len(csrf) != 43:
        csrf = secrets.token_urlsafe(32)
    response = HTMLResponse(signin_html(csrf=csrf, error=error, name=name, title=_title(request)), status_code=status,
                            headers=NO_STORE)
    response.set_cookie(SIGNIN_COOKIE, csrf, max_age=3600, path="/session", **COOKIE)
    return response


@router.get("/session", response_class=HTMLResponse, summary="The sign-in form")
def sign_in_form(request: Request) -> HTMLResponse:
    return _form_page(request)


@router.post("/session", summary="Sign in: a name and password (form) open a console session; an API token "
                                 "(JSON) opens a dispatcher map session",
             openapi_extra=json_body(SessionIn, "a dispatcher or admin token (JSON); browsers post the form "
                                                "`username`, `password`, `csrf`"),
             responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}},
                        303: {"description": "form sign-in: on to the console"}})
async def open_session(request: Request) -> Response:
    state = request.app.state.oms
    raw = await request.body()
    host = request.client.host if request.client else None
    # the anonymous allowance: a sign-in form must not be a free password- or token-guessing oracle
    rate_limit(state, await resolve_principal(state, None, host))
    if request.headers.get("content-type", "").startswith("application/json"):
        body = parse_json(SessionIn, raw)
        principal = check_role(await resolve_principal(state, f"Bearer {body.token}", host), DISPATCHER_ROLES)
        response = JSONResponse({"name": principal.name, "role": principal.role}, headers=NO_STORE)
        response.set_cookie(TOKEN_COOKIE, body.token, max_age=SESSION_SECONDS, path="/maps", **COOKIE)
        return response
    fields = {k: v[0] for k, v in parse_qs(raw.decode(errors="replace")).items()}
    form = parse_json(SignIn, json.dumps(fields).encode())
    expected = request.cookies.get(SIGNIN_COOKIE) or ""
    if not expected or not hmac.compare_digest(form.csrf.encode(), expected.encode()):
        raise ApiError(403, "csrf", "the sign-in form is stale or was not served by this site; reload it")
    state.limiter.take(f"signin:{form.username.lower()}", NAME_ATTEMPTS_PER_MINUTE, NAME_ATTEMPTS_BURST)
    opened = await run_in_threadpool(open_web_session, state.db, form.username, form.password)
    if opened is None:
        return _form_page(request, 401, "That user name and password do not match an account.", form.username)
    _, token = opened
    response = RedirectResponse("/console", status_code=303, headers=NO_STORE)
    response.set_cookie(SESSION_COOKIE, token, max_age=SESSION_SECONDS, path="/", **COOKIE)
    response.delete_cookie(SIGNIN_COOKIE, path="/session", **COOKIE)
    return response


@router.post("/session/sign-out", summary="Sign out: the session ends at once (form field `csrf`)",
             responses={303: {"description": "back to the sign-in form"}})
async def sign_out(request: Request) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        fields = parse_qs((await request.body()).decode(errors="replace"))
        check_csrf(request, (fields.get("csrf") or [None])[0] or request.headers.get("x-csrf-token"))
        state = request.app.state.oms
        await run_in_threadpool(close_web_session, state.db, state.token_cache, token)
    response = RedirectResponse("/session", status_code=303, headers=NO_STORE)
    response.delete_cookie(SESSION_COOKIE, path="/", **COOKIE)
    return response


@router.delete("/session", status_code=204, summary="Close the map session (forget the cookie)")
def close_session() -> Response:
    response = Response(status_code=204, headers=NO_STORE)
    response.delete_cookie(TOKEN_COOKIE, path="/maps", **COOKIE)
    return response
