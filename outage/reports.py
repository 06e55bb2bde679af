"""What the engine hears: customer reports, AMI meter events and SCADA device events.

Plain frozen dataclasses, checked on construction so that a bad message fails at the edge with a message naming the
report and field, never deep inside the roll-up. Times are timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

CHANNELS = ("phone", "ivr", "web", "app", "sms", "ami", "crew", "dispatcher")
POWER_STATES = ("out", "partial", "flicker", "on")
NOTIFY_PREFERENCES = ("none", "sms", "email", "voice", "app")
AMI_KINDS = ("last_gasp", "power_restore")
SCADA_KINDS = ("lockout", "close", "commanded_open")


def _check_time(what: str, ident: str, t: datetime) -> None:
    if not isinstance(t, datetime) or t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{what} {ident!r}: time must be a timezone-aware datetime, got {t!r}")


def _check_choice(what: str, ident: str, field: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{what} {ident!r}: {field} must be one of {', '.join(allowed)}, got {value!r}")


@dataclass(frozen=True, slots=True)
class Report:
    """One trouble report from a customer (or a crew/dispatcher on their behalf).

    ``power`` is what the caller says: ``out`` (no power), ``partial`` (some lights/one phase), ``flicker``
    (momentaries) or ``on`` (a hazard report, or "my power is back"). Hazard answers (``wires_down``,
    ``fire_sparks``, ``tree_on_line``, ``visible_damage``) and ``medical_equipment`` raise priority.
    ``neighbours_out`` is ``None`` when the caller did not say. The report is located by ``sp_id`` or, failing
    that, by ``lon``/``lat``.
    """

    report_id: str
    time: datetime
    sp_id: str | None = None
    lon: float | None = None
    lat: float | None = None
    channel: str = "phone"
    power: str = "out"
    wires_down: bool = False
    fire_sparks: bool = False
    tree_on_line: bool = False
    medical_equipment: bool = False
    neighbours_out: bool | None = None
    visible_damage: bool = False
    text: str = ""
    contact: str = ""
    notify: str = "none"

    def __post_init__(self) -> None:
        if not self.report_id:
            raise ValueError("report: report_id is empty")
        _check_time("report", self.report_id, self.time)
        _check_choice("report", self.report_id, "channel", self.channel, CHANNELS)
        _check_choice("report", self.report_id, "power", self.power, POWER_STATES)
        _check_choice("report", self.report_id, "notify", self.notify, NOTIFY_PREFERENCES)
        if not self.sp_id and (self.lon is None or self.lat is None):
            raise ValueError(f"report {self.report_id!r}: needs sp_id or both lon and lat")

    @property
    def hazard(self) -> bool:
        """True when the caller reports a danger to the public (wires down, fire or sparks)."""
        return self.wires_down or self.fire_sparks

    @property
    def power_out(self) -> bool:
        return self.power in ("out", "partial")


@dataclass(frozen=True, slots=True)
class AmiEvent:
    """An unsolicited meter message: ``last_gasp`` (lost voltage) or ``power_restore``.

    ``time`` is when the meter saw it happen (messages may arrive late, twice or out of order).
    """

    meter: str
    kind: str
    time: datetime

    def __post_init__(self) -> None:
        _check_choice("AMI event from meter", self.meter, "kind", self.kind, AMI_KINDS)
        _check_time("AMI event from meter", self.meter, self.time)


@dataclass(frozen=True, slots=True)
class ScadaEvent:
    """A telemetered device operation: ``lockout`` (tripped and locked out on a fault), ``close`` or
    ``commanded_open`` (an operator opened it on purpose: a planned outage that needs no crew to confirm)."""

    device_id: str
    kind: str
    time: datetime

    def __post_init__(self) -> None:
        _check_choice("SCADA event on device", self.device_id, "kind", self.kind, SCADA_KINDS)
        _check_time("SCADA event on device", self.device_id, self.time)
