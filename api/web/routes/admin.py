"""Admin routes: users and tokens, operator settings, territory import (GeoPackage or zipped OpenDSS)."""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select

from api.errors import ApiError
from api.store.models import ApiToken, AuditEntry, Crew, User, utcnow
from api.web.auth import Principal, create_user, issue_token, require
from api.web.schemas import DbId, SettingsIn, SettingsOut, UserIn, UserOut

router = APIRouter(prefix="/admin", tags=["admin"])
ADMIN = require("admin")


def audit(session, who: Principal, action: str, target: str | None = None, detail: dict | None = None) -> None:
    session.add(AuditEntry(actor=who.name, role=who.role, action=action, target=target, detail=detail))


@router.get("/users", response_model=list[UserOut])
def users(request: Request, _: Principal = Depends(ADMIN)):
    with request.app.state.oms.db.read() as session:
        return [UserOut(id=u.id, name=u.name, role=u.role, crew_id=u.crew_id, disabled=u.disabled)
                for u in session.scalars(select(User).order_by(User.id))]


@router.post("/users", response_model=UserOut, status_code=201, summary="Add a user; the answer holds its token")
def add_user(body: UserIn, request: Request, who: Principal = Depends(ADMIN)):
    with request.app.state.oms.db.write() as session, session.begin():
        if body.crew_id is not None and session.get(Crew, body.crew_id) is None:
            raise ApiError(404, "not_found", f"no crew {body.crew_id!r}", [{"field": "body.crew_id", "message": "no such crew"}])
        try:
            user, token = create_user(session, body.name, body.role, body.crew_id,
                                      request.app.state.oms.settings.token_ttl_days)
        except ValueError as exc:
            raise ApiError(409 if "exists" in str(exc) else 422, "conflict" if "exists" in str(exc) else "invalid",
                           str(exc)) from None
        audit(session, who, "user.add", body.name, {"role": body.role})
        return UserOut(id=user.id, name=user.name, role=user.role, crew_id=user.crew_id, token=token)


@router.post("/users/{user_id}/tokens", response_model=UserOut, status_code=201, summary="Issue another token")
def add_token(user_id: DbId, request: Request, who: Principal = Depends(ADMIN)):
    with request.app.state.oms.db.write() as session, session.begin():
        user = session.get(User, user_id)
        if user is None:
            raise ApiError(404, "not_found", f"no user {user_id}")
        token = issue_token(session, user, request.app.state.oms.settings.token_ttl_days)
        audit(session, who, "token.issue", user.name)
        return UserOut(id=user.id, name=user.name, role=user.role, crew_id=user.crew_id, token=token)


@router.delete("/users/{user_id}/tokens", status_code=204, summary="Revoke every token of a user")
def revoke_tokens(user_id: DbId, request: Request, who: Principal = Depends(ADMIN)):
    state = request.app.state.oms
    with state.db.write() as session, session.begin():
        user = session.get(User, user_id)
        if user is None:
            raise ApiError(404, "not_found", f"no user {user_id}")
        for tok in session.scalars(select(ApiToken).where(ApiToken.user_id == user_id,
                                                          ApiToken.revoked_at.is_(None))):
            tok.revoked_at = utcnow()
        audit(session, who, "token.revoke", user.name)
    state.token_cache.clear()


@router.post("/users/{user_id}/disable", response_model=UserOut, summary="Disable a user: its tokens stop at once")
def disable_user(user_id: DbId, request: Request, who: Principal = Depends(ADMIN)):
    return _set_disabled(request, who, user_id, True)


@router.post("/users/{user_id}/enable", response_model=UserOut, summary="Enable a disabled user again")
def enable_user(user_id: DbId, request: Request, who: Principal = Depends(ADMIN)):
    return _set_disabled(request, who, user_id, False)


def _set_disabled(request: Request, who: Principal, user_id: int, disabled: bool) -> UserOut:
    state = request.app.state.oms
    with state.db.write() as session, session.begin():
        user = session.get(User, user_id)
        if user is None:
            raise ApiError(404, "not_found", f"no user {user_id}")
        if disabled and user.id == who.user_id:
            raise ApiError(409, "conflict", "an administrator cannot disable their own user")
        user.disabled = disabled
        audit(session, who, "user.disable" if disabled else "user.enable", user.name)
        out = UserOut(id=user.id, name=user.name, role=user.role, crew_id=user.crew_id, disabled=user.disabled)
    state.token_cache.clear()
    return out


@router.get("/settings", response_model=SettingsOut)
def get_settings(request: Request, _: Principal = Depends(ADMIN)):
    return request.app.state.oms.live.operator_settings()


@router.put("/settings", response_model=SettingsOut, summary="Plan mode (auto/propose) and roll-up rule set")
def put_settings(body: SettingsIn, request: Request, who: Principal = Depends(ADMIN)):
    return request.app.state.oms.live.update_settings(body.model_dump(exclude_none=True), who.name)


@router.post("/territory", status_code=200, summary="Import a territory: a GeoPackage, or a zip of OpenDSS files",
             openapi_extra={"requestBody": {"content": {"application/octet-stream": {
                 "schema": {"type": "string", "format": "binary"}}}}})
async def import_territory(request: Request, who: Principal = Depends(ADMIN)) -> dict:
    body = await request.body()
    if not body:
        raise ApiError(422, "invalid", "empty body: send a GeoPackage (application/geopackage+sqlite3) or a zip")
    from gis.io import read_territory

    with tempfile.TemporaryDirectory() as tmp:
        try:
            if body[:4] == b"PK\x03\x04":
                from gis.io import import_territory

                with zipfile.ZipFile(_write(tmp, body)) as zf:
                    zf.extractall(tmp)
                masters = sorted(Path(tmp).rglob("*[Mm]aster*.dss")) or sorted(Path(tmp).rglob("*.dss"))
                if not masters:
                    raise ApiError(422, "invalid", "the zip holds no .dss file")
                network = import_territory(str(masters[0]), "opendss")
            elif body[:16] == b"SQLite format 3\x00":
                path = Path(tmp, "upload.gpkg")
                path.write_bytes(body)
                network = read_territory(path)
            else:
                raise ApiError(415, "unsupported_media_type", "expected a GeoPackage or a zip of OpenDSS files")
        except ApiError:
            raise
        except (ValueError, KeyError, OSError, zipfile.BadZipFile) as exc:
            raise ApiError(422, "invalid", f"territory not imported: {exc}") from None
    summary = request.app.state.oms.live.replace_territory(network, who.name)
    return summary


def _write(tmp: str, body: bytes) -> Path:
    path = Path(tmp, "upload.zip")
    path.write_bytes(body)
    return path
