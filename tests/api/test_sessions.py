"""Sessions and users: tokens expire, users can be disabled and enabled (API and ``oms users``), and the CLI lists
users with their live tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service_helpers import make_client
from sqlalchemy import select, update

from api.commands.main import main as oms
from api.store.db import Database
from api.store.models import ApiToken, User
from api.web.auth import hash_token


def _expire(db_url: str, token: str) -> None:
    db = Database(db_url)
    with db.write() as session, session.begin():
        session.execute(update(ApiToken).where(ApiToken.token_hash == hash_token(token))
                        .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    db.dispose()


def test_tokens_expire(db_url, tokens):
    db = Database(db_url)
    with db.read() as session:
        expires = session.scalar(select(ApiToken.expires_at).where(ApiToken.token_hash == hash_token(
            tokens["dispatcher"])))
    db.dispose()
    assert expires is not None and timedelta(days=89) < expires - datetime.now(UTC) <= timedelta(days=90)
    _expire(db_url, tokens["dispatcher"])
    with make_client(db_url, tokens) as c:
        r = c.get("/events", headers=c.as_("dispatcher"))
        assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
        assert c.get("/events", headers=c.as_("admin")).status_code == 200


def test_new_tokens_follow_the_ttl_setting(db_url, tokens):
    with make_client(db_url, tokens, token_ttl_days=1) as c:
        users = c.get("/admin/users", headers=c.as_("admin")).json()
        uid = next(u["id"] for u in users if u["role"] == "crew")
        token = c.post(f"/admin/users/{uid}/tokens", headers=c.as_("admin")).json()["token"]
    db = Database(db_url)
    with db.read() as session:
        expires = session.scalar(select(ApiToken.expires_at).where(ApiToken.token_hash == hash_token(token)))
    db.dispose()
    assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(days=1)


def test_admin_disables_and_enables_a_user(client):
    a = client.as_("admin")
    users = client.get("/admin/users", headers=a).json()
    disp = next(u for u in users if u["role"] == "dispatcher")
    assert client.get("/events", headers=client.as_("dispatcher")).status_code == 200  # now cached
    r = client.post(f"/admin/users/{disp['id']}/disable", headers=a)
    assert r.status_code == 200 and r.json()["disabled"] is True
    assert client.get("/events", headers=client.as_("dispatcher")).status_code == 401  # at once
    assert next(u for u in client.get("/admin/users", headers=a).json() if u["id"] == disp["id"])["disabled"]
    assert client.post(f"/admin/users/{disp['id']}/enable", headers=a).json()["disabled"] is False
    assert client.get("/events", headers=client.as_("dispatcher")).status_code == 200
    me = next(u for u in users if u["role"] == "admin")
    assert client.post(f"/admin/users/{me['id']}/disable", headers=a).status_code == 409
    assert client.post("/admin/users/999/disable", headers=a).status_code == 404


def test_oms_users_disable_enable_list(db_url, tokens, capsys):
    assert oms(["users", "disable", "dispatcher-user", "--database-url", db_url]) == 0
    with make_client(db_url, tokens) as c:
        assert c.get("/events", headers=c.as_("dispatcher")).status_code == 401
    assert oms(["users", "list", "--database-url", db_url]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if " dispatcher-user " in x)
    assert "disabled" in line and line.split()[-1] == "1"
    assert oms(["users", "enable", "dispatcher-user", "--database-url", db_url]) == 0
    with make_client(db_url, tokens) as c:
        assert c.get("/events", headers=c.as_("dispatcher")).status_code == 200
    db = Database(db_url)
    with db.read() as session:
        assert not session.scalar(select(User.disabled).where(User.name == "dispatcher-user"))
    db.dispose()
    _expire(db_url, tokens["crew"])  # an expired token is not a live one
    assert oms(["users", "list", "--database-url", db_url]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if " crew-user " in x)
    assert "active" in line and line.split()[-1] == "0"
    assert oms(["users", "disable", "nobody", "--database-url", db_url]) == 2
