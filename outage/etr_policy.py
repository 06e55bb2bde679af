"""No churn: publish a new ETR only when it matters to a member (the rule is stated in ``docs/etr.md``).

A published range is a promise: "restored between A and B, with probability p". A new estimate *matters*, and is
published, when

1. nothing is published yet; or
2. the published range has passed (``latest < now``: the promise is broken, say so at once); or
3. the new range does not overlap the published one (earlier or later); or
4. the new range ends more than :data:`LATER_BY` (30 min) after the published one.

A new range that overlaps the published one and does not end materially later is held: the published promise still
stands (a narrower range inside it, or one ending earlier, changes nothing a member would act on). And a new range
that matters by rule 3 or 4 is still held while the published range keeps at least :data:`HOLD` (60%) of the new
estimate's probability (the caller passes it as ``holds``): a promise more likely kept than not is not withdrawn
for a plan that merely slipped.

No zig-zag: once a range has moved earlier, it is not moved later again until a *new fact* arrives (a stage change:
planned, crew dispatched, crew on site with the cause, part of the customers restored) or the published range has
passed. A crew-entered ETR is never replaced by an estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from outage.etr import Etr

LATER_BY = timedelta(minutes=30)
#: a published range that still holds this much of the new estimate's probability stands (unless it has passed)
HOLD = 0.6
#: the probability of the first range published for an event: wider than later ones (which state the model's own,
#: 0.8), so that it holds while the plan firms up instead of being replaced at the first re-plan
FIRST = 0.9


@dataclass(frozen=True, slots=True)
class Published:
    """What is published for one event: the range, the fact count it was published at, and whether the last
    published move (since that fact) was earlier."""

    etr: Etr
    facts: int
    moved_earlier: bool = False


def matters(old: Etr, new: Etr, now: datetime, later_by: timedelta = LATER_BY) -> str | None:
    """Why ``new`` must replace ``old`` (rules 2-4 of the module docstring), or ``None``."""
    if old.latest < now:
        return "passed"
    if new.earliest > old.latest or new.latest < old.earliest:
        return "no overlap"
    if new.latest - old.latest > later_by:
        return "ends later"
    return None


def decide(current: Published | None, proposed: Etr, now: datetime, facts: int,
           later_by: timedelta = LATER_BY, holds: float | None = None) -> tuple[Published, bool]:
    """The state after ``proposed`` at ``now``, ``facts`` being the event's count of new facts so far, and whether
    ``proposed`` is published. ``holds``: the probability of the published range under the estimate ``proposed``
    comes from (``None``: not known, rules 1-4 alone)."""
    if current is None:
        return Published(proposed, facts), True
    old = current.etr
    if old.source == "crew" and proposed.source != "crew":
        return current, False
    why = matters(old, proposed, now, later_by)
    if why is None or (why != "passed" and holds is not None and holds >= HOLD):
        return current, False
    new_fact = facts > current.facts or why == "passed"
    later = proposed.latest > old.latest
    if later and current.moved_earlier and not new_fact:
        return current, False  # no zig-zag without a new fact
    earlier = proposed.latest < old.latest
    moved_earlier = earlier or (current.moved_earlier and not new_fact and not later)
    return Published(proposed, facts, moved_earlier), True


class Ledger:
    """The no-churn rule's memory, per event: what is published (:class:`Published`), the count of new facts, and
    the stage last proposed (a change of stage is a new fact). One implementation for the live engine
    (:meth:`outage.engine.OutageEngine.update_etr`) and the restoration simulator the benchmark scores."""

    def __init__(self) -> None:
        self._state: dict[str, tuple[Published | None, int, str | None]] = {}

    def published(self, key: str) -> Etr | None:
        state = self._state.get(key, (None, 0, None))[0]
        return None if state is None else state.etr

    def news(self, key: str, proposed: Etr, now: datetime, *, current: Etr | None, holds: float | None = None,
             fact: bool = False) -> bool:
        """Whether :meth:`apply` with ``proposed`` would change anything (publish it, or count a new fact or a new
        stage); nothing is changed. ``current``: the event's published ETR (one restored from storage counts)."""
        if current is not None and current.source == "crew" and proposed.source != "crew":
            return False  # a crew's ETR stands
        state, facts, stage = self._state.get(key, (None, 0, None))
        if fact or (stage is not None and proposed.source != stage) or (stage is None and current is not None):
            return True
        return decide(state, proposed, now, facts, holds=holds)[1]

    def apply(self, key: str, proposed: Etr, now: datetime, *, current: Etr | None, holds: float | None = None,
              fact: bool = False) -> Etr | None:
        """Offer ``proposed``; returns the range now published when it differs from ``current``, else None. A
        crew-entered ETR (``source == "crew"``) is published as entered and outranks every estimate."""
        state, facts, stage = self._state.get(key, (None, 0, None))
        if state is None and current is not None:
            state = Published(current, facts)
        facts += int(fact or (stage is not None and proposed.source != stage))
        if proposed.source == "crew":
            new, publish = Published(proposed, facts), True
        else:
            new, publish = decide(state, proposed, now, facts, holds=holds)
        self._state[key] = (new, facts, proposed.source)
        return new.etr if publish and new.etr != current else None
