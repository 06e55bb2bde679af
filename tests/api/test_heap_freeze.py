"""``create_app(freeze_heap=True)`` (what ``oms serve`` runs): once the maps are warm, the long-lived heap is out of
the garbage collector's full collections; without it nothing is frozen. In a child interpreter, since a freeze
would keep this test process's objects from the collector."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHILD = """
import gc, json, sys, time
sys.path[:0] = [{tests!r}, {repo!r}]
from service_helpers import small_feeder
from fastapi.testclient import TestClient
from api.settings import Settings
from api.store.migrate import upgrade
from api.web.app import create_app

upgrade({url!r})
app = create_app(Settings(database_url={url!r}), network=small_feeder(), freeze_heap={freeze})
with TestClient(app) as client:
    assert app.state.maps.warmed.wait(120)
    deadline = time.monotonic() + 60
    while {freeze} and gc.get_freeze_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    frozen = gc.get_freeze_count()
    public = client.get("/maps/public.geojson").status_code
print(json.dumps({{"frozen": frozen, "public": public}}))
"""


@pytest.mark.parametrize("freeze", [True, False])
def test_the_heap_is_frozen_once_warm_only_when_asked(tmp_path, freeze):
    url = f"sqlite:///{tmp_path / 'oms.db'}"
    code = CHILD.format(tests=str(REPO / "tests" / "api"), repo=str(REPO), url=url, freeze=freeze)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["public"] == 200
    if freeze:
        assert result["frozen"] > 10_000  # the territory, the map layers, the engine, the libraries
    else:
        assert result["frozen"] == 0
