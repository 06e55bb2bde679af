"""bench/feeders.py as a user runs it on models of their own: a model that does not import is named with the reason,
and the bench goes on with the others."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import feeders  # noqa: E402

DSS = Path(__file__).parent / "dss"


def test_a_model_that_does_not_import_is_reported_and_the_rest_go_on(tmp_path, capsys):
    good = DSS / "comma_arrays.dss"
    rc = feeders.main(["--feeders", str(tmp_path), "--dss", str(good), "--dss", str(tmp_path / "missing.dss"),
                       "--only", f"dss/{good.stem}", "--only", f"{tmp_path.name}/missing", "--skip-accuracy",
                       "--json"])
    rows = {r["territory"]: r for r in json.loads(capsys.readouterr().out)["territories"]}
    assert rc == 1
    assert "missing.dss" in rows[f"{tmp_path.name}/missing"]["error"]
    assert rows[f"dss/{good.stem}"]["import_ok"] and rows[f"dss/{good.stem}"]["buses"] > 0


def test_a_malformed_dss_spec_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        feeders.main(["--dss", "model.dss:north,west", "--skip-accuracy"])
    assert exit_.value.code == 2 and "--dss 'model.dss:north,west'" in capsys.readouterr().err
