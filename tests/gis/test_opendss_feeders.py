"""The public EPRI test feeders (``../shared/data/feeders`` beside the repository) import valid through the OpenDSS
engine, and what was imported matches what the engine itself reports: every bus, load and transformer."""

from __future__ import annotations

from pathlib import Path

import pytest

from gis.opendss import compile_model, read_opendss
from gis.validate import validate

FEEDERS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "feeders"
MASTERS = {"epri_ckt5": "Master_ckt5.dss", "epri_ckt7": "Master_ckt7.dss", "epri_k1": "Master_NoPV.dss",
           "epri_m1": "Master_NoPV.dss"}
#: What the engine reports after Redirect of the master (as in the feeders' README): buses, loads, transformers.
README = {"epri_ckt5": (2998, 1379, 592), "epri_ckt7": (1255, 906, 161), "epri_k1": (1282, 321, 321),
          "epri_m1": (2596, 1470, 160)}

pytestmark = pytest.mark.skipif(not FEEDERS.is_dir(), reason=f"the shared EPRI feeders are not at {FEEDERS} "
                                "(a copy of shared/ beside the repository)")


@pytest.fixture(scope="module", params=sorted(MASTERS))
def feeder(request):
    master = FEEDERS / request.param / MASTERS[request.param]
    return request.param, compile_model(master), read_opendss(master, anchor=(40.0, -80.0), scale=0.3048)


def test_imports_valid(feeder):
    _, _, net = feeder
    assert validate(net) == []
    assert len(net.substations) == 1 and net.summary()["feeders"] >= 1


def test_engine_counts_are_the_readme_counts(feeder):
    name, model, _ = feeder
    loads = [o for o in model.of_class("load") if o.get("enabled") is not False]
    transformers = [o for o in model.of_class("transformer") if o.get("enabled") is not False]
    assert (len(model.buses), len(loads), len(transformers)) == README[name]


def test_every_bus_is_a_node_or_inside_the_substation(feeder):
    _, model, net = feeder
    plain = {n for n in net.nodes["node_id"] if "~" not in n}
    inside = {b for buses in net.substations["model_buses"] for b in buses.split()}
    engine = set(model.buses)
    assert plain <= engine
    folded = engine - plain - inside  # only dead ends <bus>_open, joined to <bus> as open ties
    assert all(b.endswith("_open") and b.removesuffix("_open") in plain for b in folded)
    # buses without coordinates in the model are the placed ones (a substation node without coordinates of its
    # own takes those of another of its buses)
    placed = set(net.nodes.loc[net.nodes["placed"], "node_id"]) & plain
    located = {buses.split()[0] for buses in net.substations["model_buses"]
               if any(b in model.coords for b in buses.split())}
    assert placed == plain - set(model.coords) - located
    assert len(placed) >= 0.4 * len(plain)  # most secondary buses of real models have no coordinates


def test_every_load_has_its_service_points(feeder):
    _, model, net = feeder
    engine = {model.display("load", o["Name"]) for o in model.of_class("load") if o.get("enabled") is not False}
    imported = set(net.service_points["name"].str.extract(r"^Load\.(\S+) \(")[0])
    assert imported == engine


def test_every_transformer_is_a_segment_or_substation_equipment(feeder):
    _, model, net = feeder
    engine = {model.display("transformer", o["Name"]) for o in model.of_class("transformer")
              if o.get("enabled") is not False}
    seg = net.segments
    names = list(seg.loc[~seg["synthesized"] & seg["kind"].isin(["transformer", "regulator"]), "name"])
    names += [e for eq in net.substations["equipment"] for e in eq.split(", ")]
    found = {part.removeprefix("Transformer.") for n in names for part in n.split("+")
             if not part.startswith(("Line.", "Reactor."))}
    assert found == engine
    # no twin: a synthesized transformer only where no modelled one feeds the load
    synth = seg.loc[seg["synthesized"] & (seg["kind"] == "transformer"), "from_node"]
    assert len(synth) <= 40


def test_the_substation_transformer_is_substation_equipment(feeder):
    _, model, net = feeder
    subs = {model.display("transformer", o["Name"]) for o in model.of_class("transformer")
            if o.get("sub") or o["kv"][0] >= 30}
    assert subs and all(any(s in eq for eq in net.substations["equipment"]) for s in subs)
    assert not net.segments["name"].isin([f"Transformer.{s}" for s in subs]).any()
