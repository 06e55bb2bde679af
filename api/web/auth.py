"""Who is calling: bearer tokens (SHA-256 hashed at rest), roles, and the per-route role check.

Browsers sign in with a name and password (scrypt-hashed) instead: :func:`open_web_session` issues a random
session cookie (stored as SHA-256, like tokens) and every unsafe request carried by that cookie must repeat the
session's CSRF token (:func:`csrf_of`) in ``X-CSRF-Token``; a bearer token needs no CSRF token (a browser never
sends one by itself).

Roles: ``member`` (also every anonymous caller: the public), ``crew`` (its own assignments only), ``integration``
(meter head-ends, SCADA, IVR/SMS gateways), ``dispatcher`` and ``admin``. Each route names the roles it admits with
:func:`require`; there is no implicit hierarchy, so the table of routes x roles in the tests is the whole truth.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from fastapi import Depends, Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from api.errors import ApiError
from api.store.models import ROLES, ApiToken, User, WebSession, utcnow

TOKEN_PREFIX = "oms_"
#: Token lookups are cached this long (seconds); revoking through the API clears the cache at once.
CACHE_SECONDS = 30.0
#: The browser session cookie (HttpOnly, SameSite=Strict, path /) and how long a session lasts: a shift.
SESSION_COOKIE = "oms_session"
SESSION_SECONDS = 12 * 3600
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
#: scrypt cost: 16 MiB of memory and ~80 ms per guess on a small server (Python's documented example cost; the
#: parameters are stored with each hash, so raising them later re-hashes nobody and breaks nobody).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MIN_PASSWORD = 10


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller. ``client_key`` identifies it for rate limiting (token id, or IP address when anonymous)."""

    role: str
    name: str
    client_key: str
    user_id: int | None = None
    crew_id: str | None = None
    #: True when the caller came by session cookie (a browser): unsafe requests need the CSRF token.
    session: bool = False

    @property
    def anonymous(self) -> bool:
        return self.user_id is None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(30)


def create_user(session, name: str, role: str, crew_id: str | None = None,
                ttl_days: float | None = None) -> tuple[User, str]:
    """Add a user and a first token; returns the user and the token in clear (shown once, stored hashed)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if role == "crew" and not crew_id:
        raise ValueError(f"user {name!r}: a crew user needs a crew id")
    if session.scalar(select(User).where(User.name == name)) is not None:
        raise ValueError(f"user {name!r} already exists")
    user = User(name=name, role=role, crew_id=crew_id)
    session.add(user)
    session.flush()
    return user, issue_token(session, user, ttl_days)


def issue_token(session, user: User, ttl_days: float | None = None) -> str:
    """A new token for ``user``, expiring after ``ttl_days`` (default: the ``OMS_TOKEN_TTL_DAYS`` setting; 0 never)."""
    if ttl_days is None:
        from api.settings import Settings

        ttl_days = Settings().token_ttl_days
    token = new_token()
    expires = utcnow() + timedelta(days=ttl_days) if ttl_days else None
    session.add(ApiToken(user_id=user.id, token_hash=hash_token(token), prefix=token[:12], expires_at=expires))
    return token


# --------------------------------------------------------------------------------------------------- passwords
def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a password needs at least {MIN_PASSWORD} characters")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


#: Checked when the name is unknown, so a wrong name costs as long as a wrong password (no user enumeration).
_DUMMY_HASH = f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${base64.b64encode(bytes(16)).decode()}$" + "A" * 44


def verify_password(password: str, stored: str | None) -> bool:
    try:
        kind, n, r, p, salt, digest = (stored or _DUMMY_HASH).split("$")
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=32, maxmem=256 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return kind == "scrypt" and stored is not None and hmac.compare_digest(got, base64.b64decode(digest))


def set_password(session, name: str, password: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise ValueError(f"no user {name!r}")
    user.password_hash = hash_password(password)
    return user


# ---------------------------------------------------------------------------------------------- web sessions
def csrf_of(session_token: str) -> str:
    """The CSRF token of a session: derived from the HttpOnly cookie, so only pages we served know it."""
    return hashlib.sha256(b"csrf:" + session_token.encode()).hexdigest()[:40]


def open_web_session(db, name: str, password: str) -> tuple[User, str] | None:
    """Check the password; on success a new session (user, cookie value), else None."""
    with db.write() as session, session.begin():
        user = session.scalar(select(User).where(User.name == name))
        ok = verify_password(password, user.password_hash if user is not None else None)
        if user is None or not ok or user.disabled:
            return None
        token = "s_" + secrets.token_urlsafe(32)
        session.add(WebSession(user_id=user.id, token_hash=hash_token(token),
                               expires_at=utcnow() + timedelta(seconds=SESSION_SECONDS)))
        session.expunge(user)
    return user, token


def close_web_session(db, cache: TokenCache, token: str) -> None:
    with db.write() as session, session.begin():
        row = session.scalar(select(WebSession).where(WebSession.token_hash == hash_token(token)))
        if row is not None and row.revoked_at is None:
            row.revoked_at = utcnow()
    cache.clear()  # a signed-out cookie must stop working at once, not after the cache's 30 s


def lookup_session(db, cache: TokenCache, token: str) -> Principal | None:
    key = "session:" + hash_token(token)
    found, principal = cache.get(key)
    if found:
        return principal
    with db.read() as session:
        row = session.execute(select(WebSession, User).join(User, User.id == WebSession.user_id)
                              .where(WebSession.token_hash == hash_token(token))).first()
    principal, seconds = None, CACHE_SECONDS
    if row is not None:
        ws, user = row
        left = (ws.expires_at - utcnow()).total_seconds()
        if ws.revoked_at is None and not user.disabled and left > 0:
            principal = Principal(role=user.role, name=user.name, client_key=f"session:{ws.id}", user_id=user.id,
                                  crew_id=user.crew_id, session=True)
            seconds = left
    cache.put(key, principal, seconds)
    return principal


class TokenCache:
    """hash -> (Principal or None, expiry). Keeps the database off the hot path of a storm of gateway calls."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[Principal | None, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[bool, Principal | None]:
        with self._lock:
            hit = self._items.get(key)
        if hit is None or hit[1] < time.monotonic():
            return False, None
        return True, hit[0]

    def put(self, key: str, principal: Principal | None, seconds: float = CACHE_SECONDS) -> None:
        with self._lock:
            if len(self._items) > 100_000:  # a flood of random tokens must not grow memory without bound
                self._items.clear()
            self._items[key] = (principal, time.monotonic() + min(seconds, CACHE_SECONDS))

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def lookup(db, cache: TokenCache, token: str) -> Principal | None:
    key = hash_token(token)
    found, principal = cache.get(key)
    if found:
        return principal
    with db.read() as session:
        row = session.execute(
            select(ApiToken, User).join(User, User.id == ApiToken.user_id).where(ApiToken.token_hash == key)
        ).first()
    principal, seconds = None, CACHE_SECONDS
    if row is not None:
        tok, user = row
        left = (tok.expires_at - utcnow()).total_seconds() if tok.expires_at is not None else CACHE_SECONDS
        if tok.revoked_at is None and not user.disabled and left > 0:
            principal = Principal(role=user.role, name=user.name, client_key=f"token:{tok.id}", user_id=user.id,
                                  crew_id=user.crew_id)
            seconds = left  # a cached token must not outlive its expiry
    cache.put(key, principal, seconds)
    return principal


async def resolve_principal(state, authorization: str | None, client_host: str | None) -> Principal:
    """The caller: a token's user, or an anonymous member keyed by IP address. A cache miss reads the database in
    the thread pool; a hit (the storm's common case) costs a hash and a dict lookup."""
    if not authorization:
        return Principal(role="member", name="anonymous", client_key=f"ip:{client_host or 'unknown'}")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthorized", "Authorization header must be 'Bearer <token>'")
    found, principal = state.token_cache.get(hash_token(token))
    if not found:
        principal = await run_in_threadpool(lookup, state.db, state.token_cache, token)
    if principal is None:
        raise ApiError(401, "unauthorized", "token is unknown, expired, revoked or its user is disabled")
    return principal


def check_role(principal: Principal, roles: tuple[str, ...]) -> Principal:
    if principal.role not in roles:
        if principal.anonymous:
            raise ApiError(401, "unauthorized", "this route needs a token (Authorization: Bearer <token>)")
        raise ApiError(403, "forbidden", f"role {principal.role!r} may not use this route; "
                                         f"allowed: {', '.join(roles)}")
    return principal


async def session_principal(request: Request) -> Principal | None:
    """The signed-in browser user, or None (no cookie, or one that is unknown, expired or signed out)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 100:
        return None
    state = request.app.state.oms
    found, principal = state.token_cache.get("session:" + hash_token(token))
    if not found:
        principal = await run_in_threadpool(lookup_session, state.db, state.token_cache, token)
    return principal


def check_csrf(request: Request, sent: str | None) -> None:
    token = request.cookies.get(SESSION_COOKIE) or ""
    if not sent or not hmac.compare_digest(sent.encode(), csrf_of(token).encode()):
        raise ApiError(403, "csrf", "this form or request lacks the page's CSRF token; reload the page")


async def current_principal(request: Request) -> Principal:
    """A bearer token wins; else the session cookie (unsafe methods must carry its CSRF token); else the public."""
    header = request.headers.get("authorization")
    if not header and SESSION_COOKIE in request.cookies:
        principal = await session_principal(request)
        if principal is not None:
            if request.method not in SAFE_METHODS:
                check_csrf(request, request.headers.get(CSRF_HEADER))
            return principal
    return await resolve_principal(request.app.state.oms, header,
                                   request.client.host if request.client else None)


def require(*roles: str):
    """A dependency admitting only ``roles``; anonymous callers count as ``member``."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"require(): unknown roles {sorted(unknown)}")

    async def check(principal: Principal = Depends(current_principal)) -> Principal:
        return check_role(principal, roles)

    check.roles = roles  # read by the fast intake path and the docs
    return check

