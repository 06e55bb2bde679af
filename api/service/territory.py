"""The service's read-only view of the loaded territory: who is where, for checks at the API edge.

The intake must refuse what the engine cannot use — an unknown account or meter, an address that fits no one or
several service points, a place outside the service area — with a 422 before anything is stored, and it must do
so in microseconds. Finding the service point is :class:`gis.locate.Locator`'s job (one set of normalisation
rules for the whole system: ids, phones, addresses, coordinates; ambiguity is never resolved by a guess); this
module builds it once per territory, with its indexes, and adds what only the service needs: the engine's meter
vocabulary (what ``POST /ami`` accepts), the device ids, coordinates of service points and devices (events are
drawn and crews routed to them) and each service point's feeder, named as every feeder report names it
(:meth:`gis.topology.Topology.feeder_name`).
"""

from __future__ import annotations

from dataclasses import dataclass

from api.errors import ApiError
from gis.locate import Locator, Match, normalize_phone
from gis.network import Network
from gis.topology import Topology, build

#: A report placed by coordinates farther than this from every service point is outside the service area.
DEFAULT_RADIUS_M = 2_000.0
#: Digits kept by :func:`phone_digits`: a national number, so ``+1 555 010 9999`` = ``555 010 9999``.
PHONE_KEY_DIGITS = 10
#: Report fields tried in this order; the first that finds exactly one service point wins (as
#: :meth:`gis.locate.Locator.locate`), coordinates last.
LOCATE_FIELDS = ("account", "meter", "phone", "address")


def phone_digits(phone: str) -> str:
    """A phone number's comparable key (notification addresses): :func:`gis.locate.normalize_phone`, last 10
    digits, so that two spellings of one number, with or without the country code, share it."""
    return normalize_phone(phone)[-PHONE_KEY_DIGITS:]


@dataclass
class Directory:
    """Look-ups over one territory, built once by :meth:`from_network`."""

    locator: Locator
    #: The engine's meter vocabulary: meter id -> service point; an unmetered service point answers to its own id.
    meters: dict[str, str]
    devices: frozenset[str]
    sp_xy: dict[str, tuple[float, float]]
    device_xy: dict[str, tuple[float, float]]
    sp_feeder: dict[str, str]
    radius_m: float = DEFAULT_RADIUS_M

    @classmethod
    def from_network(cls, net: Network, topology: Topology | None = None,
                     radius_m: float = DEFAULT_RADIUS_M) -> Directory:
        """Build the look-ups; pass the engine's ``topology`` to avoid building it twice."""
        topo = topology if topology is not None else build(net)
        sps = net.service_points
        ids = sps["sp_id"].astype(str).tolist()
        meters = {(m or s): s for m, s in zip(sps["meter"].astype(str).tolist(), ids, strict=True)}
        sp_xy = {i: (float(x), float(y)) for i, x, y in zip(ids, sps.geometry.x, sps.geometry.y, strict=True)}

        nodes = dict(zip(net.nodes["node_id"].astype(str),
                         zip(net.nodes.geometry.x.astype(float), net.nodes.geometry.y.astype(float), strict=True),
                         strict=True))
        segs = net.segments
        device_xy = {s: nodes.get(t, nodes.get(f)) for s, f, t in
                     zip(segs["segment_id"].astype(str), segs["from_node"].astype(str), segs["to_node"].astype(str),
                         strict=True)}
        for sub, node in zip(net.substations["substation_id"].astype(str),
                             net.substations["source_node"].astype(str), strict=True):
            device_xy[f"substation:{sub}"] = nodes.get(node)

        heads = topo.feeder_heads()[topo.sp_node]  # the engine's grid names feeders the same way
        sp_feeder = {str(s): (topo.feeder_name(h) if h >= 0 else "")
                     for s, h in zip(topo.sp_ids.tolist(), heads.tolist(), strict=True)}
        return cls(locator=Locator(net).prepare(), meters=meters, devices=frozenset(device_xy), sp_xy=sp_xy,
                   device_xy={k: v for k, v in device_xy.items() if v is not None}, sp_feeder=sp_feeder,
                   radius_m=radius_m)

    # ---------------------------------------------------------------------------------------------- look-ups
    def event_xy(self, device_id: str | None, sp_id: str | None) -> tuple[float, float] | None:
        """Where an event is on the map: its device, or for a single service, the service point."""
        return (self.device_xy.get(device_id) if device_id else None) or self.sp_xy.get(sp_id or "")

    def meter_of(self, meter: str) -> str | None:
        """Service point of a meter id exactly as the AMI head-end and the engine spell it, else ``None``."""
        return self.meters.get(meter)

    def nearest(self, lon: float, lat: float) -> Match:
        """The service point nearest to (lon, lat) within ``radius_m``: where a report placed on the map is.

        A place is not a customer: co-located service points (flats) are not ambiguous here, the nearest stands
        for the spot (they hang on the same transformer; the engine needs the spot, not the account)."""
        query = f"{lat:.6f},{lon:.6f}"
        rows, dist = self.locator.nearest_many([lon], [lat], self.radius_m)
        if rows[0] < 0:
            return Match("not_found", "coordinates", query,
                         message=f"no service point within {self.radius_m / 1000:g} km")
        sp = str(self.locator.sp_ids(rows)[0])
        return Match("found", "coordinates", query, (sp,), message=f"nearest service point {sp}",
                     distance_m=float(dist[0]))

    def sp_by_phone(self, phone: str) -> str | None:
        """The one service point on file for a phone number, else ``None`` (unknown, or shared by several)."""
        return self.locator.by_phone(phone).sp_id

    def locate(self, *, account: str | None = None, meter: str | None = None, phone: str | None = None,
               address: str | None = None, lon: float | None = None, lat: float | None = None) -> list[Match]:
        """Try what is given, most specific first; stop at the first ``found``. Returns every answer tried (the
        last is the match when one was found), so a refusal can name each field that failed and why."""
        given = {"account": account, "meter": meter, "phone": phone, "address": address}
        answers: list[Match] = []
        for name in LOCATE_FIELDS:
            value = given[name]
            if not value:
                continue
            m = getattr(self.locator, f"by_{name}")(value)
            if not m.found and name == "meter" and value in self.meters:  # an unmetered sp by its own id
                sp = self.meters[value]
                m = Match("found", "meter", value, (sp,), message=f"meter {value!r} is service point {sp}")
            answers.append(m)
            if m.found:
                return answers
        if lon is not None and lat is not None:
            answers.append(self.nearest(lon, lat))
        return answers

    def locate_report(self, body) -> str:
        """The service point a report (:class:`api.web.schemas.ReportIn`) is about, or an error naming each field that
        found no one or several service points: 404 when every look-up was an id that names no one, else 422.
        Ambiguity is refused, never resolved by a guess."""
        answers = self.locate(account=body.account, meter=body.meter, phone=body.phone, address=body.address,
                              lon=body.lon, lat=body.lat)
        if answers and answers[-1].found:
            return answers[-1].sp_id
        if not answers:  # ReportIn refuses this already; a caller that skipped it gets the same answer
            raise ApiError(422, "invalid", "say where: give account, meter, phone, address, or lat and lon")
        problems = [(_field(m), _refusal(m)) for m in answers]
        ambiguous = [p for m, p in zip(answers, problems, strict=True) if m.status == "ambiguous"]
        hint = ": several service points fit; give the account number (or the flat) to say which" if ambiguous \
            else ""
        # Ids that name no one (account, meter, phone, address) are 404; a place outside the area or an ambiguous
        # answer is a report that cannot be taken as it is (422).
        unknown = not ambiguous and all(m.by != "coordinates" for m in answers)
        raise ApiError(404 if unknown else 422, "not_found" if unknown else "invalid",
                       "; ".join(p[1] for p in (ambiguous or problems)) + hint,
                       [{"field": f, "message": f"{text}: {m.message}"}
                        for m, (f, text) in zip(answers, problems, strict=True)])


def _field(m: Match) -> str:
    return "body.lat" if m.by == "coordinates" else f"body.{m.by}"


def _refusal(m: Match) -> str:
    """One line for a failed look-up: ambiguous, unknown id, address not found, or outside the service area."""
    if m.status == "ambiguous":
        return f"{m.by} {m.query!r} is ambiguous"
    if m.by == "coordinates":
        return f"({m.query}) is outside the service area"
    if m.by == "address":
        return f"address {m.query!r} not found"
    if m.by == "phone":
        return "phone number not on file"
    return f"unknown {m.by} {m.query!r}"
