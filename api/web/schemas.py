"""Request and response bodies (pydantic) — the API's edge. Unknown fields are refused, vocabularies are closed
(``Literal``), coordinates and sizes bounded, times timezone-aware; the error body names the field."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import Path
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

#: A database id in a URL path: bounded so that no number overflows a database integer.
DbId = Annotated[int, Path(ge=1, le=2_147_483_647)]
#: The same for BIGINT keys (the outbox): PostgreSQL refuses 2**63 and more with an error, not "not found".
BigDbId = Annotated[int, Path(ge=1, le=2**63 - 1)]
#: A string id in a URL path (event, crew): as long as the column that holds it.
PathId = Annotated[str, Path(min_length=1, max_length=64)]

#: C0 controls, DEL and C1 controls. PostgreSQL refuses NUL in text (a 500 if it got that far); the rest have no
#: business in names and ids and confuse logs and terminals.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: Free-text fields may hold line breaks and tabs; nothing else below U+0020.
CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
MULTILINE_FIELDS = frozenset({"comment", "note", "reason"})
#: Earliest and latest time any stamp may carry: before this a meter's clock is unset (year 0001, 1970), after it
#: a typo; arithmetic on either overflows or poisons reports. Recency (a configurable age) is checked by the routes.
EARLIEST_TIME = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2200, 1, 1, tzinfo=UTC)


def control_free(value: str, multiline: bool = False) -> str:
    """``value`` unchanged, or ValueError when it holds a control character."""
    if (CONTROL_IN_TEXT if multiline else CONTROL).search(value):
        raise ValueError("control characters (such as NUL) are not allowed")
    return value


def _sane_time(value: datetime) -> datetime:
    if not EARLIEST_TIME <= value <= LATEST_TIME:
        raise ValueError(f"time must be between {EARLIEST_TIME.year} and {LATEST_TIME.year}")
    return value


#: A timezone-aware time within :data:`EARLIEST_TIME` .. :data:`LATEST_TIME`.
Stamp = Annotated[AwareDatetime, AfterValidator(_sane_time), WithJsonSchema(
    {"type": "string", "format": "date-time", "pattern": r"^2[01][0-9]{2}-.*(Z|z|[+-][0-9]{2}:?[0-9]{2})$",
     "description": "with its time zone; from 2000 to 2199"})]
Power = Literal["out", "partial", "flicker", "on"]
Channel = Literal["web", "app", "ivr", "sms", "phone", "crew", "dispatcher"]
Hazard = Literal["wires_down", "fire_sparks", "tree_on_line", "visible_damage"]
MeterKind = Literal["last_gasp", "power_restore"]
ScadaKind = Literal["lockout", "close", "commanded_open"]
Role = Literal["member", "crew", "integration", "dispatcher", "admin"]
CrewStatus = Literal["available", "en_route", "on_site", "needs_help", "off_shift"]
CrewUpdate = Literal["en_route", "on_site", "needs_help", "restored"]
EventState = Literal["unconfirmed", "probable", "confirmed", "dispatched", "en_route", "on_site", "restored",
                     "cancelled"]
EventClass = Literal["single_customer", "feeder", "community", "hazard", "customer_side"]
def latitude(default=...):
    return Field(default, ge=-90.0, le=90.0, description="WGS84 degrees")


def longitude(default=...):
    return Field(default, ge=-180.0, le=180.0, description="WGS84 degrees")


class In(BaseModel):
    """Every request body: unknown fields refused, strings stripped and free of control characters."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value, info: ValidationInfo):
        multiline = info.field_name in MULTILINE_FIELDS
        if isinstance(value, str):
            return control_free(value, multiline)
        if isinstance(value, list):
            for item in value:
                if isinstance(item, str):
                    control_free(item, multiline)
        return value


class Contact(In):
    email: str | None = Field(None, max_length=200, pattern=r"^[^@\s]+@[^@\s]+$")
    sms: str | None = Field(None, max_length=32, pattern=r"^\+?[0-9 ()-]{4,31}$")
    prefer: Literal["sms", "email", "voice", "app", "none"] = "none"


class ReportIn(In):
    """A trouble report. Locate it by ``account``, ``meter``, ``phone``, ``address`` or both ``lat`` and ``lon``
    (tried in that order; the first that fits exactly one service point wins, an ambiguous one is refused)."""

    #: What ``_located`` checks, stated in the schema: one locator at least; lat and lon together.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={
        "anyOf": [*({"required": [f], "properties": {f: {"type": "string", "pattern": r"\S"}}}
                    for f in ("account", "meter", "phone", "address")),
                  {"required": ["lat", "lon"], "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}}}],
        "dependentSchemas": {c: {"required": ["lat", "lon"], "properties": {
            "lat": {"type": "number"}, "lon": {"type": "number"}}} for c in ("lat", "lon")}})

    power: Power = "out"
    channel: Channel = "web"
    account: str | None = Field(None, min_length=1, max_length=64)
    meter: str | None = Field(None, min_length=1, max_length=64)
    phone: str | None = Field(None, min_length=3, max_length=32)
    address: str | None = Field(None, max_length=200)
    lat: float | None = latitude(None)
    lon: float | None = longitude(None)
    hazards: list[Hazard] = Field(default_factory=list, max_length=4)
    medical_equipment: bool = False
    neighbours_out: bool | None = None
    comment: str | None = Field(None, max_length=1000)
    language: Literal["en", "es"] = "en"
    contact: Contact | None = None

    @model_validator(mode="after")
    def _located(self):
        if (self.lat is None) != (self.lon is None):
            raise ValueError("give both lat and lon, or neither")
        if not (self.account or self.meter or self.phone or (self.address or "").strip() or self.lat is not None):
            raise ValueError("say where: give account, meter, phone, address, or lat and lon")
        return self


class ReportAccepted(BaseModel):
    reference: str
    received_at: datetime
    duplicate: bool = Field(description="true when this idempotency key was seen before: the first report stands")
    status_url: str
    note: str | None = Field(None, description="for members: what happens to a report that matches no one on file")


class PublicEvent(BaseModel):
    """What the public may know about the outage behind a report: no names, addresses or devices."""

    state: str
    customers_out: int
    cause: str | None
    etr_earliest: datetime | None
    etr_latest: datetime | None
    etr_probability: float | None = Field(None, description="the stated chance that power is back within the "
                                                            "range (0.8: 80% of similar outages were)")
    crew_assigned: bool


class ReportStatus(BaseModel):
    reference: str
    received_at: datetime
    status: Literal["received", "analysed", "linked"]
    event: PublicEvent | None


class MeterMessageIn(In):
    meter: str = Field(min_length=1, max_length=64)
    kind: MeterKind
    at: Stamp


class AmiBatchIn(In):
    messages: list[MeterMessageIn] = Field(min_length=1)


class ScadaIn(In):
    device_id: str = Field(min_length=1, max_length=64)
    kind: ScadaKind
    at: Stamp


class Rejected(BaseModel):
    index: int
    reason: str


class IntakeAccepted(BaseModel):
    accepted: int
    rejected: list[Rejected] = []


class HistoryOut(BaseModel):
    at: datetime
    actor: str
    action: str
    from_state: str | None
    to_state: str | None
    detail: dict | None


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    state: str
    event_class: str
    tier: int
    weight: float
    priority_reason: str
    device_id: str | None
    device_kind: str | None
    sp_id: str | None
    feeder_id: str | None
    customers_out: int
    critical_count: int
    hazards: list[str]
    report_count: int
    confidence: float
    cause: str | None
    cause_confirmed: bool
    explanation: str
    lat: float | None
    lon: float | None
    etr_earliest: datetime | None
    etr_latest: datetime | None
    etr_probability: float | None = None
    merged_into: str | None
    started_at: datetime
    updated_at: datetime
    restored_at: datetime | None


class AssignmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    event_id: str
    crew_id: str
    plan_id: int | None
    status: str
    sequence: int
    eta: datetime | None
    locked: bool
    manual: bool


class EventDetail(EventOut):
    evidence: dict | None
    history: list[HistoryOut]
    assignments: list[AssignmentOut]
    report_ids: list[int]


class ConfirmIn(In):
    cause: str | None = Field(None, min_length=1, max_length=64)
    note: str | None = Field(None, max_length=500)


class CancelIn(In):
    reason: str = Field(min_length=1, max_length=200)


class RestoreIn(In):
    cause: str | None = Field(None, min_length=1, max_length=64)
    note: str | None = Field(None, max_length=500)
    devices: list[str] = Field(default_factory=list, max_length=500, description=(
        "partial restoration by switching: only the customers below these devices (inside the event) are back"))
    service_points: list[str] = Field(default_factory=list, max_length=5000,
                                      description="partial restoration: only these service points are back")


class MergeIn(In):
    event_ids: list[str] = Field(min_length=1, max_length=100, description="events merged into the path's event")


class SplitIn(In):
    device_id: str = Field(min_length=1, max_length=64, description="device below the event's device that operated")


class AssignIn(In):
    """A dispatcher's decision: this crew on this event. The optimizer never moves it."""

    event_id: str = Field(min_length=1, max_length=64)
    crew_id: str = Field(min_length=1, max_length=64)
    lock: bool = True


class LockIn(In):
    locked: bool = True


class CrewIn(In):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    name: str = Field("", max_length=120)
    skills: list[str] = Field(default_factory=list, max_length=20)
    depot_id: str | None = Field(None, max_length=64)
    lat: float | None = latitude(None)
    lon: float | None = longitude(None)
    shift_start: Stamp | None = None
    shift_end: Stamp | None = None


class CrewOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    name: str
    skills: list[str]
    depot_id: str | None
    status: str
    lat: float | None
    lon: float | None
    position_at: datetime | None
    shift_start: datetime | None
    shift_end: datetime | None


class CrewStatusIn(In):
    #: What ``_cause`` checks, stated in the schema: 'restored' needs a cause and takes no ETR.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"anyOf": [
        {"properties": {"status": {"not": {"const": "restored"}}}},
        {"required": ["cause"], "properties": {"cause": {"type": "string", "pattern": r"\S"},
                                               "etr": {"type": "null"}}}]})

    status: CrewUpdate
    cause: str | None = Field(None, min_length=1, max_length=64,
                              description="what the crew found; required with 'restored'. On site it sets the "
                                          "on-site ETR (the repair of this kind and cause)")
    note: str | None = Field(None, max_length=500)
    etr: Stamp | None = Field(None, description="the crew's own restoration time: published as entered, "
                                                        "never replaced by an estimate")

    @model_validator(mode="after")
    def _cause(self):
        if self.status == "restored" and self.etr is not None:
            raise ValueError("a restored job has no ETR")
        if self.status == "restored" and not self.cause:
            raise ValueError("status 'restored' needs a cause")
        return self


class PositionIn(In):
    # strict: a crew app's true/false or "50.1" is a bug, not a place (schemathesis ST201 found true accepted as 1.0)
    lat: Annotated[float, Field(strict=True)] = latitude()
    lon: Annotated[float, Field(strict=True)] = longitude()
    at: Stamp | None = None


class PlanOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    created_at: datetime
    status: str
    solver: str
    objective: float | None
    detail: dict | None
    assignments: list[AssignmentOut] = []


class UserIn(In):
    #: A crew user belongs to a crew: stated in the schema as well as checked.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"anyOf": [
        {"properties": {"role": {"not": {"const": "crew"}}}},
        {"required": ["crew_id"], "properties": {"crew_id": {"type": "string", "minLength": 1}}}]})

    name: str = Field(min_length=1, max_length=120)
    role: Role
    crew_id: str | None = Field(None, max_length=64)


class UserOut(BaseModel):
    id: int
    name: str
    role: str
    crew_id: str | None
    disabled: bool = False
    token: str | None = Field(None, description="shown once, at creation; stored hashed")


class SettingsIn(In):
    plan_mode: Literal["auto", "propose"] | None = None
    rules: Literal["normal", "storm"] | None = None


class SettingsOut(BaseModel):
    plan_mode: str
    rules: str


class Health(BaseModel):
    status: str
    database: str
    #: the intake writer: ``ok``, ``stopped`` or ``degraded: why``
    writer: str = "ok"
    engine: str
    #: ``single``, or with hot standby ``leader`` (runs the engine) / ``standby``
    role: str = "single"
    pending_reports: int
