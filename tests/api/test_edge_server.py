"""The running server (``oms serve``): unfinished headers are cut off, one client's connections are capped, and the
OpenAPI document says what the edge answers (4xx error bodies, GeoJSON media types, the inbound SMS body)."""

from __future__ import annotations

import socket
import time

import pytest
from service_helpers import make_users

from api.simulation.loadgen import ServerProcess


@pytest.fixture
def server(tmp_path):
    from api.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'oms.db'}"
    upgrade(url)
    make_users(url)
    proc = ServerProcess(url, env={"OMS_HEADER_TIMEOUT_S": "1", "OMS_MAX_CONNECTIONS_PER_CLIENT": "4"}).start()
    yield proc
    proc.stop()


def _open(server) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return s


def test_unfinished_headers_are_cut_off(server):
    s = _open(server)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never the blank line
    started = time.monotonic()
    answer = b""
    while chunk := s.recv(1024):
        answer += chunk
    assert time.monotonic() - started < 5 and b"408" in answer
    s.close()


def test_connections_per_client_are_capped(server):
    held = [_open(server) for _ in range(4)]
    time.sleep(0.2)
    extra = _open(server)
    extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"503" in extra.recv(1024)
    for s in held + [extra]:
        s.close()
    time.sleep(0.3)
    s = _open(server)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"200 OK" in s.recv(4096)
    s.close()


def test_openapi_documents_errors_geojson_and_the_sms_body(client):
    spec = client.get("/openapi.json").json()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for status in ("401", "422", "429"):
                assert op["responses"][status]["content"]["application/json"]["schema"]["$ref"] == \
                    "#/components/schemas/Error", (method, path, status)
    assert "application/geo+json" in spec["paths"]["/maps/public.geojson"]["get"]["responses"]["200"]["content"]
    body = spec["paths"]["/notify/sms/inbound"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/x-www-form-urlencoded"} <= set(body)
