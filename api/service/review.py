"""Public reports no service point matched, and a dispatcher's review of them.

A member's report whose account, phone or address fits no one (or several) on file is stored anyway, with no
service point (``api.web.routes.public``: "kept for a person to match"); the engine cannot place it, so it is in no
event. Here a dispatcher lists those reports, searches the territory for the service point the member meant, and
either *matches* the report (its ``sp_id`` is set and it goes to the engine exactly as a located report does: the
live loop takes it, the journal records it, a restart replays it from the row) or *dismisses* it (a prank, a
duplicate, someone outside the territory). Each decision is made once: a second one, or one on a report that was
located after all, is a 409.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update

from api.errors import ApiError
from api.service.intake import Committed
from api.store.models import Report
from gis.locate import normalize_address, normalize_id, normalize_phone

#: A report waiting for a person: analysed, located nowhere, in no event, not yet reviewed.
WAITING = (
    Report.sp_id.is_(None),
    Report.event_id.is_(None),
    Report.review.is_(None),
    Report.processed_at.is_not(None),
)
#: Most search answers returned.
SEARCH_LIMIT = 20


def waiting_count(session) -> int:
    """How many reports wait for review."""
    return session.scalar(select(func.count()).select_from(Report).where(*WAITING)) or 0


def unmatched(db, limit: int = 200, offset: int = 0) -> tuple[int, list[Report]]:
    """How many reports wait for review, and the newest ``limit`` of them (after ``offset``)."""
    with db.read() as session:
        total = waiting_count(session)
        rows = session.scalars(
            select(Report)
            .where(*WAITING)
            .order_by(Report.received_at.desc(), Report.id.desc())
            .limit(limit)
            .offset(offset)
        ).all()
    return total, list(rows)


def unmatched_messages(reports, report_event: dict[int, str | None]) -> list[tuple[str, dict]]:
    """Stream messages for reports the engine could not place: consoles count them. No personal data: the stream
    reaches crews and integrations too; a dispatcher reads the details from the review list."""
    return [
        ("report", {"id": r.id, "unmatched": True})
        for r in reports
        if r.sp_id is None and report_event.get(r.id) is None and r.lat is None
    ]


def match(live, report_id: int, sp_id: str, actor: str) -> dict[str, Any]:
    """Give a waiting report the service point ``sp_id`` and feed it to the engine, as if intake had located it."""
    live._check_leader()  # the leader's engine takes it; a standby would race it
    directory = live.directory
    if directory is None:
        raise ApiError(503, "unavailable", "no territory is loaded; nothing to match against")
    if sp_id not in directory.sp_xy:
        raise ApiError(
            404,
            "not_found",
            f"no service point {sp_id!r} in the territory",
            [{"field": "body.sp_id", "message": "unknown service point"}],
        )
    now = live.clock()
    _decide(
        live.db,
        report_id,
        sp_id=sp_id,
        review="matched",
        reviewed_by=actor,
        reviewed_at=now,
        processed_at=None,
    )  # unprocessed again: the live loop (or a restart) takes it from here
    live.submit([Committed("report", [report_id])])
    live.publish([("report", {"id": report_id, "review": "matched"})])
    return {"id": report_id, "review": "matched", "sp_id": sp_id, "by": actor, "at": now}


def dismiss(live, report_id: int, actor: str, note: str | None = None) -> dict[str, Any]:
    """Take a waiting report off the list without analysing it; it stays on record with who dismissed it, and why."""
    now = live.clock()
    _decide(live.db, report_id, review="dismissed", reviewed_by=actor, reviewed_at=now, review_note=note)
    live.publish([("report", {"id": report_id, "review": "dismissed"})])
    return {"id": report_id, "review": "dismissed", "sp_id": None, "by": actor, "at": now}


def _decide(db, report_id: int, **values) -> None:
    """One conditional UPDATE: of two dispatchers deciding at once, one wins and the other gets 409."""
    with db.write() as session, session.begin():
        done = session.execute(
            update(Report).where(Report.id == report_id, *WAITING).values(**values)
        ).rowcount
        if done:
            return
        report = session.get(Report, report_id)
    if report is None:
        raise ApiError(404, "not_found", f"no report {report_id}")
    if report.review is not None:
        raise ApiError(
            409, "conflict", f"report {report_id} was already {report.review} by {report.reviewed_by}"
        )
    if report.processed_at is None:
        raise ApiError(409, "conflict", f"report {report_id} is not analysed yet; it may still be located")
    raise ApiError(
        409,
        "conflict",
        f"report {report_id} was located (service point {report.sp_id}, event "
        f"{report.event_id}); it needs no review",
    )


# ------------------------------------------------------------------------------------------ service point search
@dataclass(frozen=True, slots=True)
class _Row:
    sp_id: str
    address: str
    account: str
    meter: str
    feeder: str
    hay: str  # normalised address + ids, for word search
    ids: tuple[str, str, str]  # account, meter, service point id, normalised
    phone: str  # digits


class ServicePointSearch:
    """Find service points by what a member may have typed: words of an address, an account, meter or service
    point id, or a phone number (its digits). Built once per territory; a search is a scan (~20 ms per 100,000
    service points), ranked exact id first, then address prefix."""

    def __init__(self, network, sp_feeder: dict[str, str]) -> None:
        sps = network.service_points

        def col(name: str) -> list[str]:
            return (
                [("" if v is None or v != v else str(v)) for v in sps[name]]
                if name in sps
                else [""] * len(sps)
            )

        ids, addresses, accounts, meters, phones = (
            col(c) for c in ("sp_id", "address", "account", "meter", "phone")
        )
        self.rows = []
        for s, a, acc, m, p in zip(ids, addresses, accounts, meters, phones, strict=True):
            keys = (normalize_id(acc), normalize_id(m), normalize_id(s))
            self.rows.append(
                _Row(
                    s,
                    a,
                    acc,
                    m,
                    sp_feeder.get(s, ""),
                    " ".join((normalize_address(a), *keys)),
                    keys,
                    normalize_phone(p),
                )
            )

    def search(self, query: str, limit: int = SEARCH_LIMIT) -> list[dict[str, str]]:
        exact_id = normalize_id(query)
        words = normalize_address(query).split() or [exact_id]
        digits = normalize_phone(query)
        by_phone = len(digits) >= 6 and len(digits) >= len(query.replace(" ", "")) * 0.6
        hits: list[tuple[int, str, _Row]] = []
        for r in self.rows:
            phone = (
                by_phone and r.phone and (r.phone.endswith(digits[-10:]) or digits.endswith(r.phone[-10:]))
            )
            if phone or (exact_id and exact_id in r.ids):
                rank = 0
            elif all(w in r.hay for w in words):
                rank = 1 if r.hay.startswith(words[0]) else 2
            else:
                continue
            hits.append((rank, r.address, r))
        hits.sort(key=lambda h: (h[0], h[1], h[2].sp_id))
        return [
            {
                "sp_id": r.sp_id,
                "address": r.address,
                "account": r.account,
                "meter": r.meter,
                "feeder": r.feeder,
            }
            for _, _, r in hits[:limit]
        ]


_searches: dict[int, ServicePointSearch] = {}
_searches_lock = threading.Lock()


def search_service_points(live, query: str, limit: int = SEARCH_LIMIT) -> list[dict[str, str]]:
    """Service points fitting ``query`` in the loaded territory (503 without one)."""
    network, directory = live.network, live.directory
    if network is None or directory is None:
        raise ApiError(503, "unavailable", "no territory is loaded; nothing to search")
    with _searches_lock:
        index = _searches.get(id(network))
        if index is None:
            _searches.clear()
            index = _searches[id(network)] = ServicePointSearch(network, directory.sp_feeder)
    return index.search(query, limit)
