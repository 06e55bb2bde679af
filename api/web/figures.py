"""The live service's headline figures (:mod:`outage.figures`): customers out, events, open, restored.

:class:`LiveFigures` counts them from what the maps show (the maps' own state and service points, so the stream,
both maps, the demo's console and its summary state one number) and from the ``events`` table, and publishes a
``figures`` message on the stream (``GET /stream``) whenever they change: after event changes, at most every
``Settings.figures_interval_s`` seconds, from a thread of its own; a replay that drives its own clock calls
:meth:`LiveFigures.publish` at every step instead (``figures_interval_s=0``).
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import func, select

from api.store.models import Event
from outage.figures import Figures, customers_out, event_counts

log = logging.getLogger("oms.figures")


class LiveFigures:
    def __init__(self, maps, db, broker, clock, interval_s: float = 2.0) -> None:
        self.maps, self.db, self.broker, self.clock = maps, db, broker, clock
        self.interval_s = interval_s
        self.last: Figures | None = None
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def now(self) -> Figures:
        """The figures at this moment, from the maps' state (open events and their service points) and the
        events table (every event, by state)."""
        # the territory first: without one, LookupError (nothing to count, and no service points to read)
        sp_customers = self.maps.data().sp_customers
        provider = self.maps.provider
        # built now, not up to a refresh interval ago: the events table is read just after, and a change between
        # the two reads is followed by a message of its own, so by another count
        state = provider.fresh() if hasattr(provider, "fresh") else provider.state()
        out = customers_out(((e.sp_indices, e.customers_out) for e in state.events), sp_customers)
        with self.db.read() as session:
            states = dict(
                session.execute(
                    select(Event.state, func.count()).where(Event.merged_into.is_(None)).group_by(Event.state)
                ).all()
            )
        events, open_, restored = event_counts(states)
        return Figures(at=self.clock(), customers_out=out, events=events, open=open_, restored=restored)

    def publish(self) -> Figures:
        """The figures now; on the stream too when they differ from the last ones published."""
        with self._lock:
            f = self.now()
            if not f.same_as(self.last):
                self.broker.publish("figures", f.message())
                self.last = f
            return f

    # ------------------------------------------------------------------------------------------ the thread
    def start(self) -> None:
        if self.interval_s <= 0 or self._thread is not None:
            return
        self.broker.listen(self._heard)
        self._changed.set()  # the first figures, once the maps can answer
        self._thread = threading.Thread(target=self._run, name="oms-figures", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._changed.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def _heard(self, msg) -> None:
        if msg.type.startswith("event_"):
            self._changed.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._changed.wait()
            if self._stop.wait(self.interval_s):  # one count for a burst of changes
                return
            self._changed.clear()
            try:
                self.publish()
            except LookupError:  # no territory loaded: the maps (and so the figures) have nothing to count
                pass
            except Exception:  # noqa: BLE001 - a failed count must not end the thread; the next change retries
                log.exception("counting the figures failed")
