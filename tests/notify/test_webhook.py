"""Contact webhooks cannot reach the service's own network (SSRF), and a failed one echoes no reply body."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from helpers import settings_for
from sqlalchemy import select

from api.notify import channels
from api.notify.channels import webhook_target
from api.notify.worker import Worker
from api.store.models import OutboxMessage, utcnow

SECRET = "internal-admin-token-0xdeadbeef"


class Internal:
    """Stands in for an internal service: answers ``status`` with a secret in the body, counts requests."""

    def __init__(self, status=400):
        self.hits, self.status = 0, status
        internal = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                internal.hits += 1
                out = json.dumps({"secret": SECRET}).encode()
                self.send_response(internal.status)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def internal():
    server = Internal()
    yield server
    server.close()


def _deliver(db, url, **overrides):
    with db.write() as s, s.begin():
        s.add(OutboxMessage(kind="outage_notice", channel="webhook", payload={"to": url, "language": "en",
                                                                              "context": {}},
                            status="pending", attempts=0, idempotency_key=f"n:{url}", created_at=utcnow(),
                            next_attempt_at=utcnow()))
    st = settings_for(None, None, webhook_url="https://hooks.example.org/utility", max_attempts=1, **overrides)
    w = Worker(db, st, channels.from_settings(st), seed=1)
    try:
        w.run_once()
    finally:
        w.close()
    with db.read() as s:
        return s.scalar(select(OutboxMessage).where(OutboxMessage.idempotency_key == f"n:{url}"))


def test_loopback_targets_are_refused_without_a_request(db, internal):
    for url in (f"http://127.0.0.1:{internal.port}/admin", f"http://localhost:{internal.port}/admin",
                f"http://[::ffff:127.0.0.1]:{internal.port}/admin"):
        row = _deliver(db, url)
        assert row.status == "dead" and row.last_error.startswith("webhook target refused"), row.last_error
    assert internal.hits == 0


def test_a_failed_webhook_leaves_a_status_line_not_the_reply(db, internal):
    row = _deliver(db, f"http://localhost:{internal.port}/hook", webhook_allow_networks=["127.0.0.0/8", "::1/128"])
    assert internal.hits == 1 and row.status == "dead"
    assert row.last_error == "webhook HTTP 400" and SECRET not in row.last_error
    internal.status = 200
    row = _deliver(db, f"http://127.0.0.1:{internal.port}/ok", webhook_allow_networks=["127.0.0.0/8"])
    assert row.status == "sent" and internal.hits == 2


def _fake(answers):
    return lambda host, port: answers[host]


@pytest.mark.parametrize("url,why", [
    ("http://169.254.169.254/latest/meta-data", "non-public"),  # cloud metadata (link-local)
    ("http://10.1.2.3/", "non-public"), ("http://[fe80::1]/", "non-public"), ("http://[::1]:8000/", "non-public"),
    ("http://0.0.0.0/", "non-public"), ("http://mixed.example.com/", "non-public"),  # one private address of two
    ("ftp://hooks.example.com/", "http"), ("http://u:p@hooks.example.com/", "credentials"),
    ("http://nowhere.invalid/", "does not resolve"), ("https://evil.example.net/", "allow-list"),
])
def test_webhook_target_refusals(url, why):
    answers = {"169.254.169.254": ["169.254.169.254"], "10.1.2.3": ["10.1.2.3"], "fe80::1": ["fe80::1"],
               "::1": ["::1"], "0.0.0.0": ["0.0.0.0"], "mixed.example.com": ["93.184.216.34", "192.168.1.5"],
               "hooks.example.com": ["93.184.216.34"], "evil.example.net": ["93.184.216.35"]}

    def resolve(host, port):
        if host not in answers:
            raise OSError("no such host")
        return answers[host]

    allow = ["*.example.com"] if "evil" in url else []
    address, reason = webhook_target(url, allow, [], resolve=resolve)
    assert address is None and why in reason


def test_webhook_target_allows_public_and_allow_listed_hosts():
    resolve = _fake({"hooks.example.com": ["93.184.216.34"], "lab": ["10.0.0.7"]})
    assert webhook_target("https://hooks.example.com/x", ["*.example.com"], [], resolve=resolve) == (
        "93.184.216.34", None)
    assert webhook_target("http://lab:8080/x", [], ["10.0.0.0/24"], resolve=resolve) == ("10.0.0.7", None)
