"""The IEEE 123-node test feeder as a territory, placed on real coordinates.

Source: the OpenDSS model in ``data/ieee123/`` (see its ``SOURCE.md``; BSD-style licence in
``LICENSE-OpenDSS-EPRI.txt``): one substation source at bus 150, 118 lines, 8 switch lines (two of them the
normally-open ties Sw7 151-300 and Sw8 54-94), 4 regulator banks (reg1a; reg2; reg3 = reg3a+reg3c; reg4 =
reg4a+b+c), transformer XFM1, 4 capacitors and 91 loads on 85 buses (3,490 kW). ``BusCoords.dat`` is planar, in
feet.

The files have no fuses, reclosers, transformers to customers or customers. :func:`ieee123_territory` imports them
with :func:`gis.opendss.read_opendss`, which adds them by the documented rules of :func:`gis.opendss_complete.complete_feeder`,
each added element marked ``synthesized=True``:

* a feeder breaker ``BRK-150`` between the substation source node and bus 150;
* per load a distribution transformer ``T-<load>`` and service points: single-phase loads are residential, one
  customer per ``kw_per_customer`` kW (default 5 kW: a 40 kW load is 8 homes); the two three-phase loads (S47,
  S48) are one commercial service point each;
* a fuse ``F-<line>`` at every lateral tap (a line with fewer than three phases leaving the three-phase main line);
* a recloser ``R-<line>`` on the main line where the downstream customer count is closest to half the feeder's
  (its main line reaches about 2 km from the breaker: long enough by the rule's 1.5 km).

Placement: the centre of the bus coordinates goes to ``anchor`` (default: the fields north of Bayreuth next to
the sample territory, lat 49.98, lon 11.60) at ``scale`` metres per unit (default 0.3048: the coordinates are
feet, so the feeder keeps its real size of about 1.6 x 1.2 km).
"""

from __future__ import annotations

from pathlib import Path

from gis.network import Network

FOLDER = Path(__file__).parent / "ieee123"
MASTER = FOLDER / "IEEE123Master.dss"
COORDS = FOLDER / "BusCoords.dat"
DEFAULT_ANCHOR = (49.98, 11.60)
FEET = 0.3048


def ieee123_territory(
    anchor: tuple[float, float] = DEFAULT_ANCHOR,
    scale: float = FEET,
    kw_per_customer: float = 5.0,
    seed: int = 0,
) -> Network:
    """The bundled IEEE 123-node feeder as a valid radial :class:`Network` (see the module docstring)."""
    from gis.opendss import read_opendss

    return read_opendss(
        MASTER,
        anchor=anchor,
        scale=scale,
        coords=COORDS,
        kw_per_customer=kw_per_customer,
        name="ieee123",
        seed=seed,
    )
