"""The contract for ids: a well-formed id that names nothing here is 404 Not Found, wherever it is (path or body); a
malformed one is 422. The OpenAPI document says so on every operation."""

from __future__ import annotations

import pytest

from api.web.routes.notify import router as notify_router

D = "dispatcher"


@pytest.fixture
def client(db_url, tokens):
    from service_helpers import make_client

    with make_client(db_url, tokens) as c:
        if not any(getattr(r, "path", "") == "/notify/contacts" for r in c.app.routes):
            c.app.include_router(notify_router)
        yield c


def _status(r) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


def test_unknown_ids_in_bodies_are_404_and_malformed_ones_422(client):
    admin, integration = client.as_("admin"), client.as_("integration")
    r = client.post(
        "/admin/users", json={"name": "nobody-crew", "role": "crew", "crew_id": "NO-SUCH-CREW"}, headers=admin
    )
    assert _status(r) == (404, "not_found") and r.json()["error"]["details"][0]["field"] == "body.crew_id"
    r = client.post(
        "/scada", json={"device_id": "NO-SUCH-DEVICE", "kind": "lockout", "at": _now()}, headers=integration
    )
    assert _status(r) == (404, "not_found")
    r = client.post(
        "/notify/contacts", json=[{"sp_id": "NO-SUCH-SP", "sms": "+15550102000"}], headers=integration
    )
    assert _status(r) == (404, "not_found")
    r = client.put("/crews/C9", json={"id": "C9", "depot_id": "NO-SUCH-DEPOT"}, headers=client.as_(D))
    assert _status(r) == (404, "not_found")
    r = client.post("/reports", json={"account": "NO-SUCH-ACCOUNT"}, headers=integration)
    assert _status(r) == (404, "not_found")
    # malformed: 422
    r = client.put("/crews/C9", json={"id": "C 9"}, headers=client.as_(D))
    assert _status(r) == (422, "invalid")
    r = client.post("/reports", json={"lat": 10.0, "lon": 10.0}, headers=integration)  # a place, not an id
    assert _status(r) == (422, "invalid")


def test_the_openapi_document_states_the_contract_and_the_control_character_rule(client):
    doc = client.get("/openapi.json").json()
    assert all(
        "404" in op["responses"] and "422" in op["responses"]
        for ops in doc["paths"].values()
        for op in ops.values()
    )
    assert "well-formed" in doc["paths"]["/admin/users"]["post"]["responses"]["404"]["description"]
    assert "names no service point" in doc["paths"]["/reports"]["post"]["responses"]["404"]["description"]
    report = doc["paths"]["/reports"]["post"]["requestBody"]["content"]["application/json"]["schema"][
        "properties"
    ]
    assert report["comment"]["anyOf"][0]["pattern"].startswith(
        "^[^\\u0000-\\u0008"
    )  # free text keeps line breaks
    assert report["account"]["anyOf"][0]["pattern"] == r"^[^\u0000-\u001f\u007f-\u009f]*$"


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()
