"""Locating a trouble report: which service point is it about?

A :class:`Locator` is built once per territory and answers by account id, meter id, phone number, free-text
address or coordinates. Every answer is a :class:`Match` whose ``status`` is ``found`` (exactly one service point),
``ambiguous`` (several fit: they are listed as candidates, none is chosen) or ``not_found`` (with the reason). A
guess is never presented as a match.

Normalisation, so that what a caller types meets what the GIS holds:

* account and meter ids: case, spaces and punctuation ignored (``acc-0042`` = ``ACC 0042``);
* phone numbers: digits only, leading zeros (trunk or ``00`` prefix) dropped; a number given with or without its
  country/area code matches when one digit string ends with the other and the shorter has at least 7 digits;
* addresses: case, accents (``ß`` -> ``ss``), punctuation and street-type abbreviations (``St``/``Street``,
  ``Rd``/``Road``, ``Ave``, ``Dr``, ``Ln``, ``Str.``/``Straße``/``Strasse``, ``Hauptstr.`` = ``Hauptstraße``...).
  An address matches when it equals a stored one or when all its words appear in exactly one stored address;
  several service points at one address (flats) or several partial fits are ``ambiguous``.

Coordinates: nearest service point within a radius, by a KD-tree (scipy ``cKDTree``) over unit vectors on the
sphere, so the distance is the exact great-circle distance with no projection to choose, and bulk queries
(:meth:`Locator.nearest_many`) run in C.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from gis.network import Network

EARTH_RADIUS_M = 6_371_008.8
DEFAULT_RADIUS_M = 100.0
#: Minimum digits a phone number needs before a suffix match (with/without country or area code) is trusted.
MIN_PHONE_SUFFIX = 7

#: Street words and their abbreviations, mapped to one spelling (after accents are folded).
STREET_WORDS = {
    "st": "street", "str": "strasse", "strasse": "strasse", "rd": "road", "ave": "avenue", "av": "avenue",
    "dr": "drive", "ln": "lane", "ct": "court", "blvd": "boulevard", "hwy": "highway", "pl": "place",
    "sq": "square", "pkwy": "parkway", "cir": "circle", "ter": "terrace", "trl": "trail", "mt": "mount",
    "n": "north", "s": "south", "e": "east", "w": "west", "ne": "northeast", "nw": "northwest",
    "se": "southeast", "sw": "southwest", "apt": "apartment", "ste": "suite",
}


@dataclass(frozen=True)
class Match:
    """The answer to one locate query."""

    status: str  # "found" | "ambiguous" | "not_found"
    by: str  # "account" | "meter" | "phone" | "address" | "coordinates"
    query: str
    sp_ids: tuple[str, ...] = ()  # the match, or the candidates when ambiguous
    message: str = ""
    distance_m: float | None = None  # coordinates only
    device_id: str | None = None  # nearest device above the match (with a topology)

    @property
    def found(self) -> bool:
        return self.status == "found"

    @property
    def sp_id(self) -> str | None:
        """The service point when exactly one was found, else None."""
        return self.sp_ids[0] if self.found else None


def normalize_id(text: str) -> str:
    """Account/meter id key: lower case, letters and digits only."""
    return re.sub(r"[\W_]+", "", str(text).casefold())


def normalize_phone(text: str) -> str:
    """Digits only, leading zeros dropped: ``+49 (0)921 555-12`` -> ``4992155512``; ``0921 55512`` -> ``92155512``."""
    text = str(text).replace("(0)", "")  # the trunk zero some write after the country code
    return re.sub(r"\D", "", text).lstrip("0")


def normalize_address(text: str) -> str:
    """Address key: folded case and accents, no punctuation, street words spelled one way."""
    text = str(text).casefold().replace("ß", "ss")
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    words = []
    for word in re.findall(r"[a-z]+|\d+[a-z]?", text):
        if word in STREET_WORDS:
            word = STREET_WORDS[word]
        elif word.endswith("str") and len(word) > 4:  # hauptstr -> hauptstrasse
            word = word + "asse"
        words.append(word)
    return " ".join(words)


@dataclass
class Locator:
    """Look-ups over a territory's service points. Build once: ``Locator(net)`` or ``Locator(net, topology)``."""

    net: Network
    topology: object | None = None
    max_candidates: int = 10
    _sp_ids: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        sp = self.net.service_points
        self._sp_ids = sp["sp_id"].to_numpy(dtype=object)
        # the text indexes are built on first use (a million accounts take seconds); coordinates need only the tree
        self._account_index: dict[str, list[int]] | None = None
        self._meter_index: dict[str, list[int]] | None = None
        self._phone_index: dict[str, list[int]] | None = None
        self._address_index: dict[str, list[int]] | None = None
        self._words: dict[str, np.ndarray] | None = None  # address word -> rows, built with the address index
        self._phone_digits: list[str] = []  # normalised phone of each row, built with the phone index
        geom = sp.geometry
        ok = ~(geom.isna() | geom.is_empty).to_numpy()
        self._xyz_rows = np.flatnonzero(ok)
        lon = np.radians(geom.x.to_numpy()[ok]) if ok.any() else np.empty(0)
        lat = np.radians(geom.y.to_numpy()[ok]) if ok.any() else np.empty(0)
        self._tree = cKDTree(_unit_vectors(lon, lat)) if len(lon) else None

    def prepare(self) -> Locator:
        """Build every text index now rather than on first use: a service locating reports on its hot path
        builds them once, when it loads the territory, so that no request pays for them."""
        for name in ("account", "meter", "phone", "address"):
            self._text_index(name)
        return self

    def _text_index(self, name: str) -> dict[str, list[int]]:
        """The index of one text column (built on first use): normalised key -> service point rows."""
        index = getattr(self, f"_{name}_index")
        if index is None:
            column = self.net.service_points[name]
            if name == "address":
                keys = column.map(normalize_address)
                words: dict[str, list[int]] = {}
                for row, key in enumerate(keys.tolist()):
                    for w in set(key.split()):
                        words.setdefault(w, []).append(row)
                self._words = {w: np.asarray(rows, dtype=np.int64) for w, rows in words.items()}
            elif name == "phone":  # keyed by the last digits: a number matches with or without its prefix
                digits = column.map(normalize_phone)
                self._phone_digits = digits.tolist()
                keys = digits.map(lambda d: d[-MIN_PHONE_SUFFIX:])
            else:
                keys = column.map(normalize_id)
            index = _index(keys)
            setattr(self, f"_{name}_index", index)
        return index

    # -- by id -----------------------------------------------------------------------------------------------
    def by_account(self, account: str) -> Match:
        return self._by_key(self._text_index("account"), normalize_id(account), "account", account)

    def by_meter(self, meter: str) -> Match:
        return self._by_key(self._text_index("meter"), normalize_id(meter), "meter", meter)

    def by_phone(self, phone: str) -> Match:
        key = normalize_phone(phone)
        if len(key) < MIN_PHONE_SUFFIX:
            return Match("not_found", "phone", phone, message=f"phone {phone!r} has fewer than {MIN_PHONE_SUFFIX} "
                                                                  "digits")
        rows = [r for r in self._text_index("phone").get(key[-MIN_PHONE_SUFFIX:], [])
                if _phone_fits(self._phone_digits[r], key)]
        return self._answer(rows, "phone", phone)

    def _by_key(self, index: dict[str, list[int]], key: str, by: str, query: str) -> Match:
        if not key:
            return Match("not_found", by, query, message=f"empty {by}")
        return self._answer(index.get(key, []), by, query)

    # -- by address --------------------------------------------------------------------------------------------
    def by_address(self, text: str) -> Match:
        key = normalize_address(text)
        if not key:
            return Match("not_found", "address", text, message="empty address")
        rows = self._text_index("address").get(key)
        if rows:
            return self._answer(rows, "address", text)
        words = key.split()
        postings = [self._words.get(w) for w in words]
        if any(p is None for p in postings):
            unknown = [w for w, p in zip(words, postings, strict=True) if p is None]
            return Match("not_found", "address", text, message=f"no service address contains {' '.join(unknown)!r}")
        postings.sort(key=len)
        rows_arr = postings[0]
        for p in postings[1:]:
            rows_arr = np.intersect1d(rows_arr, p, assume_unique=True)
            if len(rows_arr) == 0:
                break
        return self._answer(rows_arr.tolist(), "address", text)

    # -- by coordinates ------------------------------------------------------------------------------------
    def nearest_many(self, lons, lats, radius_m: float = DEFAULT_RADIUS_M) -> tuple[np.ndarray, np.ndarray]:
        """Nearest service point to each (lon, lat) within ``radius_m``: (row index or -1, distance m or inf).

        Row indices are positions in ``net.service_points`` (``Locator.sp_ids(rows)`` gives the ids).
        """
        lons = np.atleast_1d(np.asarray(lons, dtype=float))
        lats = np.atleast_1d(np.asarray(lats, dtype=float))
        if lons.shape != lats.shape:
            raise ValueError(f"lons and lats differ in shape: {lons.shape} vs {lats.shape}")
        rows = np.full(len(lons), -1, dtype=np.int64)
        dist = np.full(len(lons), np.inf)
        if self._tree is None or len(lons) == 0:
            return rows, dist
        ok = np.isfinite(lons) & np.isfinite(lats)
        pts = _unit_vectors(np.radians(lons[ok]), np.radians(lats[ok]))
        chord, idx = self._tree.query(pts, k=1, distance_upper_bound=_chord(radius_m))
        hit = np.isfinite(chord)
        r = np.full(len(pts), -1, dtype=np.int64)
        r[hit] = self._xyz_rows[idx[hit]]
        d = np.full(len(pts), np.inf)
        d[hit] = 2 * EARTH_RADIUS_M * np.arcsin(np.minimum(chord[hit] / 2, 1.0))
        rows[ok], dist[ok] = r, d
        return rows, dist

    def by_coordinates(self, lon: float, lat: float, radius_m: float = DEFAULT_RADIUS_M) -> Match:
        """Nearest service point within ``radius_m``; co-located service points (within 1 m) are ambiguous."""
        query = f"{lat:.6f},{lon:.6f}"
        rows, dist = self.nearest_many([lon], [lat], radius_m)
        if rows[0] < 0:
            return Match("not_found", "coordinates", query,
                         message=f"no service point within {radius_m:g} m of {query}")
        near = self._tree.query_ball_point(_unit_vectors(np.radians([lon]), np.radians([lat]))[0],
                                           _chord(dist[0] + 1.0))
        rows_near = sorted(self._xyz_rows[near].tolist(), key=lambda r: r != rows[0])
        match = self._answer(rows_near, "coordinates", query)
        return Match(match.status, match.by, query, match.sp_ids, match.message, float(dist[0]), match.device_id)

    # -- any -------------------------------------------------------------------------------------------------
    def locate(self, *, account: str | None = None, meter: str | None = None, phone: str | None = None,
               address: str | None = None, lon: float | None = None, lat: float | None = None,
               radius_m: float = DEFAULT_RADIUS_M) -> Match:
        """Try what is given, most specific first (account, meter, phone, address, coordinates).

        The first ``found`` answer wins; otherwise the first ``ambiguous`` one; otherwise ``not_found`` listing
        what was tried.
        """
        tries = []
        if account:
            tries.append(lambda: self.by_account(account))
        if meter:
            tries.append(lambda: self.by_meter(meter))
        if phone:
            tries.append(lambda: self.by_phone(phone))
        if address:
            tries.append(lambda: self.by_address(address))
        if lon is not None and lat is not None:
            tries.append(lambda: self.by_coordinates(lon, lat, radius_m))
        if not tries:
            raise ValueError("locate: give an account, meter, phone, address or lon/lat")
        answers = []
        for attempt in tries:
            m = attempt()
            if m.found:
                return m
            answers.append(m)
        for m in answers:
            if m.status == "ambiguous":
                return m
        return Match("not_found", "+".join(m.by for m in answers), "; ".join(m.query for m in answers),
                     message="; ".join(m.message for m in answers))

    def sp_ids(self, rows: np.ndarray) -> np.ndarray:
        """Service point ids of row indices (None where the row is -1)."""
        rows = np.asarray(rows)
        out = np.empty(len(rows), dtype=object)
        out[rows >= 0] = self._sp_ids[rows[rows >= 0]]
        return out

    # -- shared --------------------------------------------------------------------------------------------
    def _answer(self, rows: list[int], by: str, query) -> Match:
        rows = list(dict.fromkeys(int(r) for r in rows))
        if not rows:
            return Match("not_found", by, str(query), message=f"no service point with {by} {str(query)!r}")
        ids = tuple(str(self._sp_ids[r]) for r in rows[: self.max_candidates])
        if len(rows) > 1:
            more = f" (showing {self.max_candidates})" if len(rows) > self.max_candidates else ""
            return Match("ambiguous", by, str(query), ids,
                         message=f"{len(rows)} service points fit {by} {str(query)!r}{more}; ask which one")
        return Match("found", by, str(query), ids, message=f"{by} {str(query)!r} is service point {ids[0]}",
                     device_id=self._device(rows[0]))

    def _device(self, row: int) -> str | None:
        topo = self.topology
        if topo is None:
            return None
        dev = int(topo.sp_device(row))
        return str(topo.segment_ids[dev]) if dev >= 0 else None


def _index(keys) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for row, key in enumerate(keys.tolist()):
        if key:
            out.setdefault(key, []).append(row)
    return out


def _phone_fits(stored: str, query: str) -> bool:
    if stored == query:
        return True
    short, long_ = sorted((stored, query), key=len)
    return len(short) >= MIN_PHONE_SUFFIX and long_.endswith(short)


def _unit_vectors(lon_rad: np.ndarray, lat_rad: np.ndarray) -> np.ndarray:
    cos_lat = np.cos(lat_rad)
    return np.column_stack([cos_lat * np.cos(lon_rad), cos_lat * np.sin(lon_rad), np.sin(lat_rad)])


def _chord(metres: float) -> float:
    """Straight-line distance through the unit sphere for a great-circle distance in metres."""
    return 2 * np.sin(min(metres / EARTH_RADIUS_M, np.pi) / 2)
