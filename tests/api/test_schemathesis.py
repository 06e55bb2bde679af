"""Property-based API fuzzing with schemathesis against the OpenAPI schema of a running ``oms serve``: no input
produces a 5xx, and every response matches the schema. Runs as admin, crew, integration and anonymously; slow."""

from __future__ import annotations

import atexit
import os
import tempfile

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance  # noqa: E402
from service_helpers import make_users, small_feeder  # noqa: E402

from api.simulation.loadgen import ServerProcess  # noqa: E402
from api.store.migrate import upgrade  # noqa: E402

pytestmark = pytest.mark.slow

_tmp = tempfile.mkdtemp(prefix="oms-schemathesis-")
_url = f"sqlite:///{os.path.join(_tmp, 'oms.db')}"
upgrade(_url)
_tokens = make_users(_url)

def _territory() -> str:
    from gis.io import write_territory

    path = os.path.join(_tmp, "small.gpkg")
    write_territory(small_feeder(), path)
    return path


# schemathesis parametrizes from a live schema at import, so the server starts at collection; tests/api/conftest.py
# collects this module only when slow tests are selected, and atexit stops the server whatever happens.
_server = ServerProcess(_url, _territory(), env={"OMS_RATE_LIMIT_PER_MINUTE": "1000000",
                                                 "OMS_RATE_LIMIT_BURST": "100000",
                                                 "OMS_PUBLIC_RATE_LIMIT_PER_MINUTE": "1000000",
                                                 "OMS_PUBLIC_RATE_LIMIT_BURST": "100000"}).start()
atexit.register(_server.stop)
schema = schemathesis.openapi.from_url(_server.url + "/openapi.json").exclude(path="/stream")


@pytest.fixture(scope="module", autouse=True)
def _stop_server():
    yield
    _server.stop()


@schema.parametrize()
@settings(max_examples=int(os.environ.get("OMS_FUZZ_EXAMPLES", "25")), deadline=None,
          suppress_health_check=list(HealthCheck))
@pytest.mark.parametrize("role", ["admin", "anonymous", "crew", "integration"])
def test_no_5xx_and_responses_match_schema(case, role):
    headers = {} if role == "anonymous" else {"Authorization": f"Bearer {_tokens[role]}"}
    response = case.call(headers=headers, timeout=30)
    case.validate_response(response, checks=[not_a_server_error, status_code_conformance,
                                             response_schema_conformance])
