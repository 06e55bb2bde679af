"""Who gets what, on which channel, and when — pure decisions (no database, no network; the clock is an argument).

Rules, after what utilities do and what customers complain about (research: notifications B.1-B.4):

- The reporter hears on their preferred channel in their language; if that channel is opted out or not configured,
  the next one they gave us; if none is left, nothing is sent (and the outbox row says why).
- Every opted-in customer downstream of a predicted or confirmed outage gets a proactive notice, not only reporters.
- At most one message per customer per event per kind unless its content changed (the ledger's digest); events
  merged into another carry their ledger along, so a merge never notifies twice.
- ETR updates when the published ETR changes, and only then. What is published is decided once, by the engine's
  no-churn rule (:func:`outage.etr_policy.decide`, stated in docs/etr.md): a range that no longer overlaps, ends
  more than 30 min later, or has passed. Notifications add no threshold of their own; a waiting update is replaced
  by a newer one (the planner coalesces), so a member is never sent a range that is no longer the published one.
- Quiet hours (per contact, local time) hold non-urgent messages until they end; acknowledgments, restoration
  notices and keyword answers are never held.
- SMS keywords: the opt-out words of the big SMS platforms (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE,
  OPTOUT, ...), START/UNSTOP/YES to opt back in, HELP/INFO, and OUT (power still out) / STATUS.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from api.notify.templates import LANGUAGES, URGENT_KINDS

#: Channel preference order after the preferred one.
FALLBACK_ORDER = ("sms", "email", "voice", "webhook")
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT-OUT",
                        "OPT OUT", "ARRET", "ALTO", "PARAR"})
START_WORDS = frozenset({"START", "UNSTOP", "YES", "SI", "SÍ"})
HELP_WORDS = frozenset({"HELP", "INFO", "AYUDA"})
OUT_WORDS = frozenset({"OUT", "OFF", "STILL OUT", "NO POWER", "SIN LUZ"})
STATUS_WORDS = frozenset({"STATUS", "STAT", "ESTADO"})
#: Event states in which an outage is worth a proactive notice (predicted or confirmed, still open).
NOTICE_STATES = frozenset({"probable", "confirmed", "dispatched", "en_route", "on_site"})
CREW_STATES = frozenset({"dispatched", "en_route", "on_site"})


_E164 = re.compile(r"\+[1-9][0-9]{7,14}")


def e164(number: str, country_code: str = "1") -> str | None:
    """``number`` in E.164 (``+15550102000``) once spaces, dots, dashes and parentheses are dropped, else None.

    A national number (no ``+`` or ``00``) gets ``country_code``, as a CIS export usually omits it; with the North
    American plan (``1``) it must then have exactly 10 digits (or 11 starting with 1)."""
    compact = re.sub(r"[\s().-]", "", number or "")
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    elif not compact.startswith("+") and compact.isdigit():
        if country_code == "1":
            compact = ("+" + compact) if len(compact) == 11 and compact[0] == "1" else \
                ("+1" + compact if len(compact) == 10 else "")
        else:
            compact = "+" + country_code + compact.lstrip("0")
    if country_code == "1" and compact.startswith("+1") and len(compact) != 12:
        return None
    return compact if _E164.fullmatch(compact) else None


def zone_problem(tz: str | None) -> str | None:
    """Why ``tz`` is not a usable IANA time zone (None when it is, or when none is given)."""
    if tz is None:
        return None
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError/ValueError: paths and odd characters
        return f"unknown time zone {tz[:64]!r}"
    return None


def contact_problem(tz: str | None, language: str | None) -> str | None:
    """Why the planner cannot serve a stored contact (it is then parked, not retried on every scan)."""
    if language not in LANGUAGES:
        return f"unsupported language {str(language)[:16]!r}"
    return zone_problem(tz)


@dataclass(frozen=True, slots=True)
class Route:
    channel: str
    address: str


def choose_route(prefer: str | None, addresses: dict[str, str | None], opted_out: set[tuple[str, str]],
                 available: set[str]) -> Route | None:
    """The channel to use: ``prefer`` if it has an address, is configured and not opted out, else the next one."""
    order = ([prefer] if prefer else []) + [c for c in FALLBACK_ORDER if c != prefer]
    for channel in order:
        address = addresses.get(channel)
        if address and channel in available and (channel, address) not in opted_out:
            return Route(channel, address)
    return None


def quiet_until(now: datetime, start_min: int | None, end_min: int | None, tz: str | None) -> datetime | None:
    """If ``now`` falls in the quiet window [start, end) local time (it may wrap midnight), when it ends (UTC)."""
    if start_min is None or end_min is None or start_min == end_min:
        return None
    zone = ZoneInfo(tz or "UTC")
    local = now.astimezone(zone)
    minute = local.hour * 60 + local.minute
    wraps = start_min > end_min
    inside = (minute >= start_min or minute < end_min) if wraps else (start_min <= minute < end_min)
    if not inside:
        return None
    end_day = local.date() + timedelta(days=1) if wraps and minute >= start_min else local.date()
    end_local = datetime.combine(end_day, time(end_min // 60, end_min % 60), zone)
    return end_local.astimezone(now.tzinfo)


@dataclass(frozen=True, slots=True)
class Sent:
    """What the ledger says one audience was last told about an event, for one kind."""

    digest: str
    etr: datetime | None
    at: datetime


@dataclass(frozen=True, slots=True)
class Decision:
    send: bool
    at: datetime | None = None
    reason: str = ""


def decide(kind: str, last: Sent | None, digest: str, now: datetime, *, quiet_end: datetime | None) -> Decision:
    """Whether to send a message of ``kind`` with content ``digest`` now, later (``at``) or not at all. An
    ``etr_update``'s digest is the published range (:func:`etr_digest`): a new range is news, the same one is not;
    whether a new estimate becomes a new published range was decided by :mod:`outage.etr_policy`."""
    if last is not None and last.digest == digest:
        return Decision(False, reason="already told")
    at = now
    if kind not in URGENT_KINDS and quiet_end is not None and quiet_end > at:
        at = quiet_end
    return Decision(True, at, "")


def digest(*parts: object) -> str:
    """A short stable fingerprint of a message's content (what makes two messages 'the same')."""
    return hashlib.blake2b("|".join("" if p is None else str(p) for p in parts).encode(), digest_size=8).hexdigest()


def etr_digest(etr_earliest: datetime | None, etr_latest: datetime | None, probability: float | None = None) -> str:
    """The published ETR as content: its range and stated probability (a new published range is news)."""
    if etr_latest is None and etr_earliest is None:
        return "none"
    return digest(*(int(t.timestamp()) if t is not None else None for t in (etr_earliest, etr_latest)),
                  None if probability is None else round(float(probability), 3))


def etr_probability(detail: dict | None) -> float | None:
    """The stated probability of an ``events`` row's ETR (its ``etr_detail``), if the estimate states one."""
    p = (detail or {}).get("probability")
    return float(p) if p is not None else None


def parse_keyword(body: str) -> str:
    """``stop``, ``start``, ``help``, ``out``, ``status`` or ``other`` for an inbound SMS (exact words, any case)."""
    text = " ".join(body.strip().upper().replace(".", " ").replace("!", " ").split())
    if text in STOP_WORDS:
        return "stop"
    if text in START_WORDS:
        return "start"
    if text in HELP_WORDS:
        return "help"
    if text in OUT_WORDS:
        return "out"
    if text in STATUS_WORDS:
        return "status"
    return "other"


def backoff_s(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform in [base*2^(n-1)/2, base*2^(n-1)], capped."""
    top = min(cap, base * 2 ** max(0, attempt - 1))
    return top * (0.5 + 0.5 * (rng or random).random())


def affected_service_points(topology, device_ids: list[str], sp_id: str | None,
                            substation_nodes: dict[str, str]) -> list[str]:
    """Service point ids downstream of an event's devices (``substation:<id>`` included), or its one service point.

    ``substation_nodes`` maps substation id to its source node id."""
    idx: list[np.ndarray] = []
    for dev in device_ids:
        if dev.startswith("substation:"):
            node = substation_nodes.get(dev.split(":", 1)[1])
            if node is None or node not in topology.node_index:
                continue
            nodes = topology.downstream_nodes(topology.node_index[node])
            mask = np.zeros(topology.n_nodes, dtype=bool)
            mask[nodes] = True
            idx.append(np.flatnonzero(mask[topology.sp_node]))
        elif dev in topology.segment_index:
            idx.append(topology.downstream_service_points(topology.segment_index[dev]))
    if not idx:
        return [sp_id] if sp_id else []
    ids = topology.sp_ids[np.unique(np.concatenate(idx))].tolist()
    if sp_id and sp_id not in ids:
        ids.append(sp_id)
    return [str(i) for i in ids]
