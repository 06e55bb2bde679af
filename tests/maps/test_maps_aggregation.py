"""Privacy-safe areas: every public area serves at least k customers; roll-up counts are right."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from maps_territory import sp_rows, storm_state, territory

from api.maps.aggregation import aggregate_outages, merge_small_units, partition_areas
from api.maps.state import MapEvent


@pytest.fixture(scope="module")
def net():
    return territory()


@pytest.mark.parametrize("k", [1, 5, 10, 25])
def test_every_area_serves_at_least_k_customers(net, k):
    part = partition_areas(net, cell_m=1000, min_customers=k)
    assert part.meets_minimum
    assert part.customers_served.min() >= k
    assert part.customers_served.sum() == net.service_points["customers"].sum()
    # each service point's area serves what the partition says it does
    served = np.bincount(part.area_of_sp, weights=net.service_points["customers"], minlength=part.n_areas)
    assert np.array_equal(served.astype(int), part.customers_served)


def test_lonely_farms_are_merged_not_shown_alone(net):
    part = partition_areas(net, cell_m=1000, min_customers=10)
    farms = sp_rows(net, "sp-farm")
    for row in farms:
        assert part.customers_served[part.area_of_sp[row]] >= 10
    unmerged = partition_areas(net, cell_m=1000, min_customers=1)
    assert unmerged.customers_served.min() == 1  # without the rule a farm would stand alone: the rule did the work


def test_whole_territory_below_k_is_flagged(net):
    part = partition_areas(net, cell_m=1000, min_customers=10_000)
    assert part.n_areas == 1 and not part.meets_minimum


def test_area_polygons_reveal_no_customer_coordinate(net):
    part = partition_areas(net, cell_m=1000, min_customers=10)
    vertices = {tuple(np.round(c, 6)) for g in part.geometry for c in shapely.get_coordinates(g)}
    for p in net.service_points.geometry:
        assert (round(p.x, 6), round(p.y, 6)) not in vertices
    # and every service point lies inside its own area
    for row, p in enumerate(net.service_points.geometry):
        assert part.geometry[part.area_of_sp[row]].covers(p)


def test_partition_is_deterministic(net):
    a = partition_areas(net, 800, 7)
    b = partition_areas(net, 800, 7)
    assert np.array_equal(a.area_of_sp, b.area_of_sp)


def test_bad_parameters_are_named(net):
    with pytest.raises(ValueError, match="cell_m"):
        partition_areas(net, cell_m=0)
    with pytest.raises(ValueError, match="min_customers"):
        partition_areas(net, min_customers=0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(-20, 20), st.integers(-20, 20)), min_size=1, max_size=40),
       st.integers(1, 40))
def test_merge_reaches_k_whenever_the_total_allows(units, k):
    customers = np.array([u[0] for u in units])
    centres = np.array([[u[1], u[2]] for u in units], dtype=float)
    label = merge_small_units(customers, centres, k)
    groups = np.unique(label)
    sizes = np.array([customers[label == g].sum() for g in groups])
    if customers.sum() >= k:
        assert sizes.min() >= k
    else:
        assert len(groups) == 1
    assert sizes.sum() == customers.sum()


def test_rollup_counts_customers_once_and_combines_facts(net):
    part = partition_areas(net, 1000, 10)
    customers = net.service_points["customers"].to_numpy()
    state = storm_state(net)
    # a nested event covering part of the village again must not double count
    nested = MapEvent("EV-102", "TV1", 11.502, 50.002, tier=4, event_class="single_customer", customers_out=5,
                      sp_indices=sp_rows(net, "sp-v0"), cause="blown fuse", crew_status="on site",
                      etr_low=datetime(2024, 7, 1, 19, 0, tzinfo=UTC), etr_high=datetime(2024, 7, 1, 19, 30, tzinfo=UTC))
    areas, summary = aggregate_outages(part, customers, (*state.events, nested))
    assert summary.customers_out == 21  # 20 villagers + 1 farm, the nested 5 counted once
    assert summary.events == 3
    assert sum(a.customers_out for a in areas) == 21
    village_area = part.area_of_sp[sp_rows(net, "sp-v0")[0]]
    va = next(a for a in areas if a.area == village_area)
    assert va.crew_status == "on site"  # the furthest crew status in the area
    assert va.etr_low == datetime(2024, 7, 1, 19, 0, tzinfo=UTC)
    assert va.etr_high == datetime(2024, 7, 1, 21, 30, tzinfo=UTC)
    assert "tree on line" in va.causes
    farm_area = part.area_of_sp[sp_rows(net, "sp-farm0")[0]]
    fa = next(a for a in areas if a.area == farm_area)
    assert fa.etr_pending  # the farm's outage has no ETR yet
    assert fa.percent_out == pytest.approx(100.0 * fa.customers_out / fa.customers_served)


def test_event_without_service_points_is_placed_by_location(net):
    part = partition_areas(net, 1000, 10)
    customers = net.service_points["customers"].to_numpy()
    ev = MapEvent("EV-9", "FT", 11.521, 49.971, tier=3, event_class="feeder", customers_out=12)
    areas, summary = aggregate_outages(part, customers, (ev,))
    town = part.area_of_sp[sp_rows(net, "sp-town0")[0]]
    assert [a.area for a in areas] == [town]
    assert summary.customers_out == 12


def test_bad_service_point_index_names_the_event(net):
    part = partition_areas(net, 1000, 10)
    ev = replace(storm_state(net).events[0], sp_indices=(0, 9999))
    with pytest.raises(ValueError, match="EV-100"):
        aggregate_outages(part, net.service_points["customers"].to_numpy(), (ev,))


def test_no_events_no_areas(net):
    part = partition_areas(net, 1000, 10)
    areas, summary = aggregate_outages(part, net.service_points["customers"].to_numpy(), ())
    assert areas == [] and summary.customers_out == 0 and summary.percent_out == 0.0
