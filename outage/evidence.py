"""Evidence and its counters: what the engine knows about each service point and device, before any judgement.

An :class:`~outage.engine.OutageEngine` is assembled from four parts; this is the one that takes evidence in and
keeps the numbers the roll-up judges by. Out-evidence (a call, a declared last gasp, a ping answering off) and
power-on evidence at a service point are added to, or taken off, per-device counters along the service point's
chain: service points and customers with out-evidence, children with evidence, power-on evidence, the neighbours
answers of callers, and the likelihood terms (:mod:`outage.rules`: per device the log-likelihood that it operated
against the best explanation below it). It also learns the call-in rate from AMI-backed outages and pings meters.

The counters live on the engine (its constructor creates them, so that all of its state can be read in one place);
the methods here are the only ones that change them, except the roll-up's bookkeeping of which devices are
predicted (:mod:`outage.rollup`). After changing the counters along a chain they hand it to the roll-up
(``_reevaluate``, ``_place``, ``_verify``), and they open and close events through the life cycle
(:mod:`outage.lifecycle`).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from outage.events import EventCancelled, EventState, ReportAttached
from outage.lifecycle import ENGINE, _Track
from outage.meters import PING_OFF, PING_ON, PING_UNKNOWN
from outage.rules import RuleSet

#: how long after a last gasp a call from the same service point still counts for the call-rate estimate (calls
#: come a median of minutes after the power goes, a long tail after; an hour catches nearly all)
CALL_RATE_WINDOW = timedelta(hours=1)


class EvidenceMixin:
    """Evidence in and out of the per-device counters, the likelihood terms, call-rate learning and pings.

    A part of :class:`~outage.engine.OutageEngine`, not usable alone: it reads the engine's grid, rules, meters
    and counters, and calls the roll-up (:class:`~outage.rollup.RollUpMixin`) and the life cycle
    (:class:`~outage.lifecycle.LifeCycleMixin`).
    """

    # ================================================================ evidence: out, power on, reports
    def _add_out(
        self, k: int, t: datetime, report_id: str | None = None, hint: bool | None = None, source: str = ""
    ) -> _Track:
        """Out-evidence at service point ``k``; returns the event now holding it."""
        g = self.grid
        tr = self._sp_track.get(k)
        rs = self._ruleset_sp(k)
        if tr is not None and tr.event.open:
            last = self._sp_last.get(k, t)
            if report_id is not None:
                self.stats["duplicates"] += t - last <= rs.duplicate_window
                self._attach_report(tr, k, report_id, t, duplicate=True)
            elif source == "ami":
                tr.event.last_gasps += 1
                tr.event.mark_changed()
            if t > (tr.event.last_evidence or t):
                tr.event.last_evidence = t
            self._judge(tr, t)
            return tr
        if self._first_seen is None:
            self._first_seen = t
        if report_id is not None:
            self._call_times.append(t)
        if k in self._sp_on:
            self._remove_on(k)
        nested_parent = None
        frozen = self._explained_by_frozen(k)
        if frozen is not None:
            if k not in frozen.restored:
                self._attach(frozen, k, report_id, t, source)
                return frozen
            nested_parent = frozen
        else:
            nested_parent = self._recently_restored(k, t, rs)
        chain = g.chain(k)
        c = g.sp_customers[k]
        parent, out_sps, active, tele, lik_out = (
            g.parent,
            self._out_sps,
            self._active,
            self._closed_tele,
            self._lik_out,
        )
        lik_out_m, lik_out_c, metered = self._lik_out_m, self._lik_out_c, g.metered[k]
        if chain:
            e, h, leaf = self._evidence_llr(chain[0], source, hint)
            self._sp_ev[k] = (e, h, leaf)
            self._below[chain[0]] += leaf
        esum, n_sp = self._esum, g.n_sp
        for d in chain:
            if out_sps[d] == 0 and parent[d] >= 0 and not tele[d]:
                active[parent[d]] += 1
            out_sps[d] += 1
            lik_out[d] += 1
            lik_out_m[d] += metered
            lik_out_c[d] += c
            self._out_cust[d] += c
            esum[d] += e + h if n_sp[d] > 1 else e  # under one service point, no neighbours to answer about
        if hint is not None and chain and g.is_transformer[chain[0]]:
            self._sp_hint[k] = hint
            (self._hint if hint else self._nohint)[chain[0]] += 1
        self._reevaluate(chain)
        tr = self._place(k, chain, t, ami_t=t if source == "ami" else None)
        self._attach(tr, k, report_id, t, source)
        self._judge(tr, t)
        if nested_parent is not None:
            self._make_nested(tr, nested_parent, t)
        self._verify(tr, t)
        return tr

    def _attach(self, tr: _Track, k: int, report_id: str | None, t: datetime, source: str) -> None:
        ev = tr.event
        if k not in tr.sps:
            self._sp_put(tr, k, [])
            ev.service_points_out += 1
        self._sp_track[k] = tr
        if source == "ami":
            ev.last_gasps += 1
            if tr.first_gasp is None or t < tr.first_gasp:
                tr.first_gasp = t
            if tr.newest_gasp is None or t > tr.newest_gasp:
                tr.newest_gasp = t
            if k not in self._sp_gasp or t < self._sp_gasp[k]:
                self._sp_gasp[k] = t
        if report_id is not None:
            self._attach_report(tr, k, report_id, t, duplicate=False)
        if ev.last_evidence is None or t > ev.last_evidence:
            ev.last_evidence = t
        self._note_onset(tr)
        ev.mark_changed()  # counts changed; device, customers and class did not

    def _attach_report(self, tr: _Track, k: int, report_id: str, t: datetime, duplicate: bool) -> None:
        if report_id in self._report_track:
            raise ValueError(f"report {report_id!r} was already ingested")
        if k not in tr.sps:
            self._sp_put(tr, k, [])
        tr.sps[k].append(report_id)
        tr.event.reports.append(report_id)
        tr.event.mark_changed()
        self._report_track[report_id] = tr
        self._sp_last[k] = t
        self._changes.append(ReportAttached(tr.event.event_id, t, report_id, duplicate))

    def _add_on(self, k: int, t: datetime) -> None:
        """Power-on evidence at ``k``: it is not out, and no device above it can be out."""
        tr = self._sp_track.get(k)
        if tr is not None and tr.event.open:
            tr.event.power_on_evidence += 1
            if tr.frozen:
                return  # a worked event: the crew decides; the evidence is on record
            self._remove_out(tr, k)
        self._push(t + self._ruleset_sp(k).power_on_ttl, "on_expire", (k, t))
        if k in self._sp_on:
            self._sp_on[k] = t
            return
        self._sp_on[k] = t
        chain = self.grid.chain(k)
        for d in chain:
            self._on[d] += 1
        self._reevaluate(chain)
        for d in chain:  # a lone call's transformer: not all its customers are out, the call is placed again
            lone = self._event_at.get(d)
            if lone is not None and lone.lone and not lone.frozen:
                self._dissolve(lone)

    def _remove_on(self, k: int, t: datetime | None = None) -> None:
        del self._sp_on[k]
        chain = self.grid.chain(k)
        for d in chain:
            self._on[d] -= 1
        self._reevaluate(chain, t)

    def _expire_on(self, k: int, now: datetime) -> None:
        """Power-on evidence has aged out. If it still matters (out-evidence around it) and meters can be asked,
        ask again: still on renews it, off turns it into out-evidence. Otherwise it lapses."""
        g = self.grid
        if self.meters is not None and any(self._out_sps[d] for d in g.chain(k)):
            answer = self._ping([k], now, self._ruleset_sp(k))[k]
            if answer == PING_ON:
                self._sp_on[k] = now
                self._push(now + self._ruleset_sp(k).power_on_ttl, "on_expire", (k, now))
                return
            self._remove_on(k, now)
            if answer == PING_OFF:
                self._add_out(k, now, source="ping")
            return
        self._remove_on(k, now)

    def _remove_out(self, tr: _Track, k: int) -> None:
        """Take ``k``'s out-evidence out of a pending event (it has power after all)."""
        reps = self._sp_pop(tr, k)
        self._sp_track.pop(k, None)
        tr.event.service_points_out -= 1
        chain = self.grid.chain(k)
        self._uncount(k, chain)
        if not tr.sps:
            # nothing left: the prediction was wrong (reports stay on the cancelled event's record)
            self._close_evidence(tr)
            for r in reps:
                tr.event.reports.remove(r) if r in tr.event.reports else None
            self._transition(
                tr,
                EventState.CANCELLED,
                tr.event.last_evidence or self.clock(),
                ENGINE,
                "power-on evidence: no customer left out",
            )
            self._changes.append(
                EventCancelled(tr.event.event_id, tr.event.last_evidence or self.clock(), "power-on evidence")
            )
            self._orphan_reports(reps, k)
            return
        self._orphan_reports(reps, k)
        self._rebuild_reports(tr)
        self._refresh(tr)

    def _orphan_reports(self, reps: list[str], k: int) -> None:
        """Reports of a service point that turned out to have power: kept on a cancelled record event."""
        if not reps:
            return
        tr = self._new_track(
            -1,
            k,
            self._sp_last.get(k, self.clock()),
            EventState.UNCONFIRMED,
            actor=ENGINE,
            reason="report from a service point with power",
            frozen=True,
        )
        self._sp_put(tr, k, list(reps))
        for r in reps:
            self._report_track[r] = tr
        self._rebuild_reports(tr)
        self._transition(tr, EventState.CANCELLED, tr.event.start, ENGINE, "service point has power")

    def _stale_meter_message(self, k: int, kind: str, t: datetime) -> bool:
        """Whether a meter message at service point ``k`` stamped ``t`` is older than what is known since: a last gasp
        before the meter's latest restore (that outage is over); a restore before the meter's latest last gasp,
        before the latest call holding ``k`` out, or before the start of an open event over ``k`` (it tells of the
        time before that outage). Otherwise it becomes the meter's latest message of its kind."""
        if kind == "last_gasp":
            restored = self._meter_restore_latest.get(k)
            if restored is not None and t < restored:
                return True
            if k not in self._meter_gasp_latest or t > self._meter_gasp_latest[k]:
                self._meter_gasp_latest[k] = t
            return False
        gasp = self._meter_gasp_latest.get(k)
        if gasp is not None and t < gasp:
            return True
        tr = self._sp_track.get(k)
        if tr is not None and tr.event.open and t < self._sp_last.get(k, tr.event.start):
            return True
        for d in self.grid.chain(k):
            for at in (self._event_at, self._frozen_at):
                over = at.get(d)
                if over is not None and over.event.open and t < over.event.start:
                    return True
        if k not in self._meter_restore_latest or t > self._meter_restore_latest[k]:
            self._meter_restore_latest[k] = t
        return False

    # ================================================================ counters
    def _uncount(self, k: int, chain: list[int], rules: bool = True, likelihood: bool = True) -> None:
        """Take ``k``'s out-evidence off the counters along ``chain``: the count rules' (``rules``) and the
        likelihood's (``likelihood``). A settled (frozen) event leaves the count rules when it freezes but stays
        in the likelihood until it closes: its customers are still out, neither silent nor new evidence, and
        taking them away would read them as silence under the devices above it."""
        c = self.grid.sp_customers[k]
        parent, out_sps, active, tele = self.grid.parent, self._out_sps, self._active, self._closed_tele
        if likelihood:
            e, h, leaf = self._sp_ev.pop(k, (0.0, 0.0, 0.0))
            if chain:
                self._below[chain[0]] -= leaf
            esum, lik_out, lik_out_m, lik_out_c = self._esum, self._lik_out, self._lik_out_m, self._lik_out_c
            metered, n_sp = self.grid.metered[k], self.grid.n_sp
            for d in chain:
                lik_out[d] -= 1
                lik_out_m[d] -= metered
                lik_out_c[d] -= c
                esum[d] -= e + h if n_sp[d] > 1 else e
        if rules:
            if chain:
                hint = self._sp_hint.pop(k, None)
                if hint is not None:
                    (self._hint if hint else self._nohint)[chain[0]] -= 1
            for d in chain:
                out_sps[d] -= 1
                self._out_cust[d] -= c
                if out_sps[d] == 0 and parent[d] >= 0 and not tele[d]:
                    active[parent[d]] -= 1
        self._reevaluate(chain)

    def _set_telemetered_closed(self, d: int, closed: bool) -> None:
        """A telemetered-closed device is never predicted and does not count as a child with evidence."""
        if self._closed_tele[d] == closed:
            return
        self._closed_tele[d] = closed
        p = self.grid.parent[d]
        if p >= 0 and self._out_sps[d] > 0:
            self._active[p] += -1 if closed else 1

    # ================================================================ likelihood terms (outage.rules module docstring)
    @staticmethod
    def _likelihood_kept(rs: RuleSet, ami: bool) -> bool:
        """Whether the likelihood numbers are kept for a device under ``rs`` whose feeder is AMI (``ami``) or not:
        it rolls up by likelihood, or its count rules take the likelihood as a second opinion while the evidence
        there is calls alone."""
        return rs.rollup == "likelihood" or (rs.likelihood_check and not ami)

    def _ami_at(self, d: int) -> bool:
        """Whether meters below device ``d`` send last gasps: its feeder's have (above the feeders: any have).
        Utilities roll AMI out area by area, and a feeder's head-end link can be down in a storm, so one feeder's
        last gasps say nothing about the silence of customers on another."""
        return self._ami_feeder[self._dev_feeder[d]]

    def _silence_measured(self, d: int) -> bool:
        """Whether meters measure the silence below ``d``: its feeder is AMI and every service point on it has a
        meter. On a partly metered feeder the unmetered customers' silence is still only the silence of callers,
        so the count rules keep the likelihood's second opinion there."""
        f = self._dev_feeder[d]
        return self._ami_feeder[f] and self._fully_metered[f]

    def _lik_terms(self, rs, ami: bool) -> tuple:
        """Log terms of a rule set's likelihood model at the current call-rate estimate, for devices whose meters
        send last gasps (``ami``) or not (cached). The call rate learned where meters tell who is out holds for
        the customers elsewhere too."""
        lk = rs.likelihood
        p_call = self._call_rate(rs)
        key = (p_call, ami)
        hit = self._lik_cache.get((id(rs), ami))
        if hit is not None and hit[0] == key and hit[1] is rs:
            return hit[2]
        p_gasp = 1.0 - lk.ami_loss if ami else 0.0
        silent = math.log((1.0 - p_call) * (1.0 - p_gasp))
        terms = (  # (the silence of an unmetered customer, whatever the feeder, is last)
            {k: math.log(v) for k, v in lk.fault_prior.items()},
            silent,
            math.log(p_call / lk.false_call_rate),  # a call: out vs. a customer who is not out
            math.log((1.0 - lk.ami_loss) / lk.false_meter_rate),  # a declared last gasp or a ping saying off
            math.log(lk.neighbours_odds),
            math.log(1.0 - p_call),
        )
        self._lik_cache[(id(rs), ami)] = (key, rs, terms)
        return terms

    def _evidence_llr(self, first: int, source: str, hint: bool | None) -> tuple[float, float, float]:
        """(evidence LLR out vs. on, neighbours-answer LLR for device hypotheses, leaf value) of a new service
        point with out-evidence whose first device is ``first``."""
        rs, ami = self._ruleset_dev(first), self._ami_at(first)
        if not self._likelihood_kept(rs, self._silence_measured(first)):
            return 0.0, 0.0, 0.0
        logp, _, e_call, e_meter, h_odds, _ = self._lik_terms(rs, ami)
        e = e_meter if source in ("ami", "ping") else e_call
        h = 0.0 if hint is None else (h_odds if hint else -h_odds)
        # the answer is about the neighbours (Grid.neighbourhood): it weighs for (or against) the hypotheses of
        # devices that hold them, those of more than one service point (_add_out); under the drop, as under no
        # outage or a device of the caller alone, the neighbours are on (counting "out too" against the drop as well
        # counted it twice against "not out"'s once)
        leaf = max(0.0, logp.get("service", -9.0) + e)
        return e, h, leaf

    def _update_likelihood(self, chain: list[int]) -> None:
        """Recompute operated/best bottom-up along ``chain`` and pass each change to the parent's ``below``."""
        g = self.grid
        oper, below, best, esum, out, parent = (
            self._oper,
            self._below,
            self._best,
            self._esum,
            self._lik_out,
            g.parent,
        )
        on, tele, kind, n_met, n_cust = self._on, self._closed_tele, g.kind, g.n_metered, g.device_customers
        terms_of, kept, out_m, out_c = self._lik_terms, self._likelihood_kept, self._lik_out_m, self._lik_out_c
        ami_feeder, dev_feeder, full = self._ami_feeder, self._dev_feeder, self._fully_metered
        rs_prev = ami_prev = terms = None
        for d in chain:
            rs = self._ruleset_dev(d)
            f = dev_feeder[d]
            ami = ami_feeder[f]
            if not kept(rs, ami and full[f]):
                continue
            if rs is not rs_prev or ami is not ami_prev:
                terms, rs_prev, ami_prev = terms_of(rs, ami), rs, ami
            logp, silent, silent_unmetered = terms[0], terms[1], terms[5]
            m = out[d]
            if on[d] or tele[d] or m == 0:
                o = -math.inf
            else:
                # every silent customer at the call rate (each customer of a service point may call: ten flats
                # behind one service that stay silent weigh as ten), and each silent meter at the feeder's last-gasp
                # rate on top (silent - silent_unmetered: nothing where the feeder's meters send no last gasps)
                o = (logp.get(kind[d], -9.0) + esum[d] + (n_met[d] - out_m[d]) * (silent - silent_unmetered)
                     + (n_cust[d] - out_c[d]) * silent_unmetered)
            oper[d] = o
            b = below[d]
            new = o if o > b else b
            delta = new - best[d]
            if delta:
                best[d] = new
                p = parent[d]
                if p >= 0:
                    below[p] += delta

    # ================================================================ call-rate learning
    def _call_rate(self, rs) -> float:
        """The call-in rate: the rule set's prior, updated by what AMI-backed outages have shown (on any feeder)."""
        lk = rs.likelihood
        p_call = (self._call_rate_calls + lk.call_rate * lk.call_rate_weight) / (
            self._call_rate_n + lk.call_rate_weight
        )
        return min(0.95, max(0.01, p_call))

    def _learn_call_rate(self, k: int, t: datetime) -> None:
        """An AMI-backed outage at ``k``: after an hour, whether its customer called updates the call-rate
        estimate (calls and last gasps are independent, so this share is unbiased)."""
        self._ami_feeder[self._sp_feeder[k]] = self._ami_feeder[0] = True
        if k in self._call_rate_seen:
            return
        self._call_rate_seen.add(k)
        self._push(t + CALL_RATE_WINDOW, "call_rate", (k, t))

    def _close_call_window(self, k: int, t0: datetime) -> None:
        """The hour after an AMI-backed outage at ``k`` (its meter went dark at ``t0``) is over: count the
        service point, and whether its customer called within the window, into the call-rate estimate."""
        self._call_rate_n += 1
        called = self._sp_called.get(k)
        self._call_rate_calls += called is not None and called <= t0 + CALL_RATE_WINDOW

    # ================================================================ pings
    def _ping(self, sps: list[int], t: datetime, rs) -> dict[int, str]:
        """Ping the meters of service points ``sps``; answers per service point. Meters that do not answer are
        asked again up to ``rs.ping_retries`` times (head-ends retry: a lost answer on an RF mesh or PLC is
        usually congestion, not a dead meter); what is still unanswered stays ``unknown``."""
        g = self.grid
        out: dict[int, str] = {}
        todo = sps
        for _ in range(1 + rs.ping_retries):
            answers = self.meters.ping([g.meters[k] for k in todo], t)
            self.stats["pings"] += len(todo)
            for k in todo:
                out[k] = answers.get(g.meters[k], PING_UNKNOWN)
            todo = [k for k in todo if out[k] == PING_UNKNOWN]
            if not todo:
                break
        return out
