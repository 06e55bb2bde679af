"""The storm clock: one simulated clock for everything a replay runs.

A replay must give one storm per seed at any speed. So nothing in it may read the wall clock: the storm feed, the
crews, the live engine, the re-planner, the notification planner and worker and the maps all read one
:class:`StormClock`. The clock only moves when the driver advances it (in fixed steps of storm time); the speed
only sets how long a step lasts in real time.

The service takes the clock as ``create_app(clock=...)`` (intake stamps and time checks, the live engine, plans,
the maps); the notification planner and worker take it as ``clock=``.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class StormClock:
    """Storm time: starts at ``start`` and moves only by :meth:`advance`. Calling it returns the current time."""

    def __init__(self, start: datetime, speed: float) -> None:
        if start.tzinfo is None:
            raise ValueError("the storm clock's start must be timezone-aware (UTC)")
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.start, self.speed = start, speed
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now

    def advance_to(self, at: datetime) -> datetime:
        """Move to ``at`` (never back: an earlier time leaves the clock where it is)."""
        with self._lock:
            self._now = max(self._now, at)
            return self._now

    def at(self, offset_s: float) -> datetime:
        """The storm time ``offset_s`` seconds after the start."""
        return self.start + timedelta(seconds=offset_s)

    @property
    def elapsed_s(self) -> float:
        return (self() - self.start).total_seconds()

    def note(self) -> str:
        """What the maps print next to the time: that it is storm time, and how fast it runs."""
        return f"storm time, {self.speed:g}x"

    def label(self, tz=None) -> str:
        """``storm time 14:20, 120x`` (local time of ``tz``, default the machine's)."""
        return f"storm time {self().astimezone(tz):%H:%M}, {self.speed:g}x"


def storm_start(now: datetime | None = None) -> datetime:
    """The storm starts at the top of the current hour (UTC): its times read like today's, and two runs started in
    different minutes are the same storm to the notice (ETRs and their updates are rounded on the clock's quarter
    hours and five minutes, so a storm started at 07:05 and one started at 07:25 would word and time them
    differently)."""
    now = now or datetime.now(UTC)
    return now.replace(minute=0, second=0, microsecond=0)

