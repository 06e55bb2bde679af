"""Calibration on a truth that is known: the restoration simulator's own repair distribution (heavy-tailed:
lognormal by kind and cause, broken poles, waits for a tree crew). The model learns from a few hundred restored
events, as after a season, and its 80% ranges must hold 75-85% of new ones: from arrival, given the time already
spent on site (the conditional remaining time), and with the cause not yet known."""

from __future__ import annotations

import numpy as np
import pytest

from api.simulation.restoration import _draw_cause, _draw_repair
from outage.etr_model import EtrModel

KINDS = ("service", "transformer", "fuse", "recloser", "sectionalizer", "breaker")
SHARE = np.array([0.3, 0.3, 0.2, 0.08, 0.07, 0.05])


def _events(rng: np.random.Generator, n: int) -> list[tuple[str, str, float]]:
    out = []
    for _ in range(n):
        kind = KINDS[int(rng.choice(len(KINDS), p=SHARE))]
        cause = _draw_cause(rng, bool(rng.random() < 0.4))
        out.append((kind, cause, _draw_repair(rng, kind, cause)))
    return out


@pytest.fixture(scope="module")
def learned() -> EtrModel:
    model = EtrModel(probability=0.8)
    for kind, cause, minutes in _events(np.random.default_rng(7), 300):
        model.learn_repair(kind, cause, minutes)
    return model


@pytest.mark.parametrize("cause_known", [True, False])
def test_on_site_ranges_hold_80_percent_of_a_known_truth(learned, cause_known):
    hits = [low <= m <= high for kind, cause, m in _events(np.random.default_rng(8), 1500)
            for low, _, high in [learned.remaining("on_site", 0.0, kind, cause if cause_known else "")]]
    assert 0.75 <= np.mean(hits) <= 0.85, np.mean(hits)


def test_remaining_time_given_time_on_site_holds_80_percent(learned):
    """A crew on site for ``e`` minutes: the truth is the repair given it is longer than ``e``, minus ``e``."""
    rng = np.random.default_rng(9)
    hits = []
    for kind, cause, m in _events(rng, 3000):
        elapsed = float(rng.uniform(0.0, 240.0))
        if m <= elapsed:
            continue
        low, _, high = learned.remaining("on_site", 0.0, kind, cause, elapsed)
        hits.append(low <= m - elapsed <= high)
    assert len(hits) > 1000 and 0.75 <= np.mean(hits) <= 0.85, (len(hits), np.mean(hits))


def test_a_quarter_hour_range_still_holds_its_probability(learned):
    """Rounding the ends to quarter hours must not cost coverage on short repairs (service drops)."""
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 6, 1, 18, 7, tzinfo=UTC)
    hits = []
    for kind, cause, m in _events(np.random.default_rng(10), 1500):
        if kind != "service":
            continue
        etr = learned.estimate(now, "on_site", kind, cause=cause)
        hits.append(etr.earliest <= now + timedelta(minutes=m) <= etr.latest)
    assert len(hits) > 300 and 0.75 <= np.mean(hits) <= 0.88, (len(hits), np.mean(hits))
