"""Address search for the public map: "your area: N out, ETR ...", never anything about a customer.

:class:`AddressIndex` is built once per territory from the service points' addresses (``Street No, Postcode
Place``), their areas (:mod:`api.maps.areas`) and the territory's OSM street names. A query is normalised
(case, accents, ``ß``, "straße"/"str."), split into house number, postcode and words, and matched by character
trigrams (one sparse product over every street, so typos and missing words still find it), then ranked by
similarity and by a postcode or place named in the query.

What comes back is the street and place as the index knows them (public street names), the house number *as typed*
and the area: the same shape whether or not that house number is a customer, so a search cannot tell who is one.
A house number not on file gives the area of the nearest number on that street; no number gives the street's
main area. Places ("Bindlach") answer with the place.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix

ADDRESS = re.compile(r"^\s*(?P<street>.+?)\s+(?P<number>\d+\s*[a-zA-Z]?(?:[-/]\d+)?)\s*,\s*"
                     r"(?:(?P<postcode>\d{4,5})\s+)?(?P<place>.+?)\s*$")
NUMBER = re.compile(r"^\d{1,4}[a-z]?$")
POSTCODE = re.compile(r"^\d{5}$")
MAX_QUERY = 200
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def normalize(text: str) -> str:
    """Lower case, no accents, ``ß`` as ``ss``, "straße"/"strasse"/"str."/"street" as ``str``, words only."""
    text = unicodedata.normalize("NFKD", text.lower().replace("ß", "ss"))
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"[^a-z0-9]+", " ", text)
    text = re.sub(r"(strasse|street|str)\b", "str", text)
    return re.sub(r"\s+", " ", text).strip()


def trigrams(text: str) -> list[str]:
    padded = f"  {text} "
    return [padded[i:i + 3] for i in range(len(padded) - 2)]


def _number_value(number: str) -> int:
    m = re.match(r"\d+", number)
    return int(m.group()) if m else 0


@dataclass(frozen=True)
class Match:
    """One answer: ``label`` to show, ``kind`` ("street" or "place"), the fine ``area`` (-1 for a place) and its
    ``place``; ``others``: a few other labels the member may have meant."""

    label: str
    kind: str
    area: int
    place: int
    others: tuple[str, ...] = ()


class AddressIndex:
    """See the module docstring. ``area_of_sp``/``place_of_area`` come from :class:`api.maps.areas.NamedAreas`;
    ``streets``: (name, fine area) of OSM streets, for streets no service point is addressed on."""

    def __init__(self, addresses: Sequence[str], area_of_sp: np.ndarray, place_of_area: np.ndarray,
                 place_names: Sequence[str], place_members: Sequence[Sequence[str]] = (),
                 streets: Iterable[tuple[str, int]] = ()):
        self.place_of_area = np.asarray(place_of_area)
        keys: dict[tuple[str, str], int] = {}
        labels: list[tuple[str, str, str]] = []  # street, postcode, place as written
        main_area: list[int] = []
        numbers: list[tuple[np.ndarray, np.ndarray]] = []
        # A million addresses share a few thousand streets, places and house numbers: parse them column-wise
        # and normalise each distinct text once (1,000,000 addresses: 29 s one by one, a few seconds so)
        text = pd.Series(addresses, dtype=object).fillna("").astype(str)
        parts = text.str.extract(ADDRESS)
        ok = parts["street"].notna().to_numpy()
        parts = parts[ok]
        areas = np.asarray(area_of_sp, dtype=np.int64)[ok]
        if len(parts):
            raw, raw_first = pd.factorize(parts["street"] + "\x00" + parts["place"])
            first_row = np.unique(raw, return_index=True)[1]  # factorize numbers by first appearance
            street_col, place_col = parts["street"].to_numpy(), parts["place"].to_numpy()
            postcode_col = parts["postcode"].fillna("").to_numpy()
            k_of_raw = np.empty(len(raw_first), dtype=np.int64)
            for r, row in enumerate(first_row.tolist()):
                key = (normalize(street_col[row]), normalize(place_col[row]))
                k = keys.get(key)
                if k is None:
                    k = keys[key] = len(labels)
                    labels.append((street_col[row], postcode_col[row], place_col[row]))
                k_of_raw[r] = k
            kk = k_of_raw[raw]
            num_codes, num_uniques = pd.factorize(parts["number"])
            norm_num = [normalize(x).replace(" ", "") for x in num_uniques]
            n_codes, n_uniques = pd.factorize(pd.Series(norm_num, dtype=object)[num_codes].to_numpy())
            n_value = np.array([_number_value(x) for x in n_uniques], dtype=np.int64)
            order = np.arange(len(kk))
            # the area of each (street, number): its first service point's; the street's: its most common one
            first = pd.DataFrame({"k": kk, "n": n_codes, "area": areas}).drop_duplicates(["k", "n"])
            first = first.iloc[np.argsort(first["k"].to_numpy(), kind="stable")]
            fk = first["k"].to_numpy()
            bounds = np.searchsorted(fk, np.arange(len(labels) + 1))
            fv, fa = n_value[first["n"].to_numpy()], first["area"].to_numpy()
            numbers = [(fv[a:b], fa[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
            votes = (pd.DataFrame({"k": kk, "area": areas, "row": order}).groupby(["k", "area"], sort=False)
                     .agg(count=("row", "size"), first=("row", "min")).reset_index()
                     .sort_values(["k", "count", "first"], ascending=[True, False, True], kind="stable")
                     .drop_duplicates("k"))
            main_area = votes["area"].astype(np.int64).tolist()
        addressed = {k[0] for k in keys}
        for name, area in streets:  # streets no one is addressed on still find their area
            key = (normalize(name), "")
            if key[0] and key[0] not in addressed and key not in keys:
                keys[key] = len(labels)
                labels.append((name, "", place_names[self.place_of_area[area]]))
                numbers.append((np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)))
                main_area.append(int(area))
        self._labels = labels
        self._numbers = numbers
        self._main_area = main_area
        self._n_streets = len(labels)
        # places (and the villages merged into them) are candidates too
        self._place_of_candidate = []
        texts = [f"{normalize(s)} {normalize(p)}" for s, _, p in labels]
        for p, members in enumerate(place_members or [[n] for n in place_names]):
            for name in dict.fromkeys([place_names[p], *members]):
                texts.append(normalize(name))
                self._place_of_candidate.append((name, p))
        self._texts = texts
        self._postcode = [pc for _, pc, _ in labels] + [""] * len(self._place_of_candidate)
        vocab: dict[str, int] = {}
        rows, cols = [], []
        for i, t in enumerate(texts):
            for g in set(trigrams(t)):
                rows.append(i)
                cols.append(vocab.setdefault(g, len(vocab)))
        self._vocab = vocab
        self._matrix = csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                                  shape=(len(texts), max(len(vocab), 1)))
        self._sizes = np.asarray(self._matrix.sum(axis=1)).ravel()

    def __len__(self) -> int:
        return self._n_streets

    def search(self, query: str, limit: int = 4) -> Match | None:
        """The best match for ``query`` (None when nothing is similar enough)."""
        words = normalize(query[:MAX_QUERY]).split()
        postcode = next((w for w in words if POSTCODE.match(w)), "")
        number = next((w for w in words if NUMBER.match(w)), "")
        text = " ".join(w for w in words if w not in (postcode, number))
        if not text:
            return None
        grams = [self._vocab[g] for g in set(trigrams(text)) if g in self._vocab]
        if not grams:
            return None
        hits = np.asarray(self._matrix[:, grams].sum(axis=1)).ravel()
        # Dice similarity, plus a nudge for the postcode typed; a street wins a tie against a place
        score = 2 * hits / (self._sizes + len(set(trigrams(text))))
        if postcode:
            score += 0.15 * (np.array(self._postcode) == postcode)
        score[: self._n_streets] += 0.01
        best = np.argsort(-score, kind="stable")[:limit]
        if score[best[0]] < 0.35:
            return None
        labels = [self._label(int(i), "") for i in best[1:] if score[i] >= 0.35]
        return self._answer(int(best[0]), number, tuple(dict.fromkeys(x for x in labels if x)))

    def _label(self, i: int, number: str) -> str:
        if i >= self._n_streets:
            return self._place_of_candidate[i - self._n_streets][0]
        street, postcode, place = self._labels[i]
        where = f"{postcode} {place}".strip()
        return f"{street} {number}, {where}" if number else f"{street}, {where}"

    def _answer(self, i: int, number: str, others: tuple[str, ...]) -> Match:
        if i >= self._n_streets:
            name, place = self._place_of_candidate[i - self._n_streets]
            return Match(label=name, kind="place", area=-1, place=int(place), others=others)
        area = self._main_area[i]
        values, areas = self._numbers[i]
        if number and len(values):
            area = int(areas[np.argmin(np.abs(values - _number_value(number)))])
        return Match(label=self._label(i, number), kind="street", area=int(area),
                     place=int(self.place_of_area[area]), others=others)
