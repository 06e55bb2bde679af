"""What is broken: reports, trouble-call analysis, events and their life cycle, priority, ETR, storm simulator.

``reports``   Report / AmiEvent / ScadaEvent (what the engine hears)
``rules``     per-device-kind roll-up rules in named rule sets, switchable per district
``grid``      the engine's flat per-device index over a :class:`gis.topology.Topology`
``engine``    OutageEngine: the public API (evidence in, life cycle, queries) over the four parts below
``evidence``  the engine's evidence and counters: out/on evidence, likelihood terms, call-rate learning, pings
``rollup``    the engine's roll-up: which devices operated, which event holds each piece of evidence
``customer_side`` the engine's lone calls: an outage, or a problem on the customer's side
``lifecycle`` the engine's events: tracks, freezing, restoration and interruption records, descriptions, timers
``events``    OutageEvent, its states and classes, and the Change records the engine returns
``priority``  tiers P1-P4 with reasons, response targets and aging
``etr``       restoration estimates (ranges with confidence, no churn, crew-entered kept)
``meters``    the AMI ping interface and a simulated head-end
``storm``     what a simulated storm is: settings, faults, messages, the fault mix (read by simulate and ceiling)
``simulate``  storm simulator, scoring, naive baseline
``ceiling``   the best precision and recall any engine could reach from calls alone on the simulator's storms
"""
