"""Validation of a territory: every problem found, each naming the offending ids.

:func:`validate` lists the problems without raising. The checks themselves run inside :func:`gis.topology.build`
(which raises :class:`~gis.topology.TopologyError` with them): the table checks are in :mod:`gis.checks`, the one
that needs the built tree is :func:`gis.topology.check_service_points`.
"""

from __future__ import annotations

from gis.network import Network
from gis.topology import TopologyError, build


def validate(net: Network) -> list[str]:
    """All problems of ``net`` as messages; an empty list means valid."""
    try:
        build(net, validate=True)
    except TopologyError as exc:
        return exc.problems
    return []
