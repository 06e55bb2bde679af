"""The roll-up: which devices the evidence says operated, and which event each piece of evidence belongs to.

An :class:`~outage.engine.OutageEngine` is assembled from four parts; this is the one that judges. After the
counters along a chain change (:mod:`outage.evidence`), ``_reevaluate`` re-runs each device's rule bottom-up
(``_passes``: count rules or likelihood, and among devices with the same customers the one the fault prior
favours, ``_equiv_choice``); devices that stop passing dissolve their events, whose evidence is placed again.
``_place`` puts new evidence in the event of the highest predicted device of its chain, gathering the events below
it (``_gather``) — except earlier, separate outages, told apart by when their meters went dark or, with calls
only, by when their customers called (``_call_onset``). A backbone device whose evidence is all theirs opens no
event for one late call (``_below_backbone_floor``): the next predicted device down takes it. When SCADA sees a
device lock out, the calls-only outages below it that began earlier are judged on what was heard until then
(``_lift_under_lockout``): later silence below it says nothing. Every new prediction is verified by pinging meters
under it (``_verify``).

Which devices are predicted (``_pred``, ``_pred_children``) is the state this part keeps; the events themselves
are created, registered and closed by the life cycle (:mod:`outage.lifecycle`).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from outage.events import EventCancelled, EventMerged, EventState
from outage.lifecycle import ENGINE, _Track
from outage.meters import PING_OFF, PING_ON
from outage.separation import log_odds_separate, onset_log_evidence


class RollUpMixin:
    """Rule evaluation up the chain, placing evidence in events, merging and dissolving them, and verifying
    new predictions by ping.

    A part of :class:`~outage.engine.OutageEngine`, not usable alone: it reads the engine's grid, rules and the
    counters of :class:`~outage.evidence.EvidenceMixin`, and creates and closes events through
    :class:`~outage.lifecycle.LifeCycleMixin`.
    """

    # ================================================================ rules: which devices are predicted
    def _passes(self, d: int) -> bool:
        """Whether ``d`` is predicted: its rule passes — or, for devices with exactly the same customers (a fuse
        feeding one transformer), the rule of any of them passes and ``d`` is the one the prior favours."""
        members = self.grid.equiv[d]
        if members is None:
            return self._own_passes(d)
        if self._equiv_choice(members) != d:
            return False
        return any(self._own_passes(m) for m in members)

    def _equiv_choice(self, members: tuple[int, ...]) -> int:
        """Of devices that interrupt the same customers (top first), the one the fault prior favours: evidence
        cannot tell them apart, so the kind that fails more often is the better bet (ties: the higher device).
        Only devices that telemetry does not show closed are in the running, and only those whose call floor
        (``min_calls``) the evidence meets — except that a lateral device (fuse, sectionalizer: rules counting
        children with evidence) drops its floor once the class's lowest member (the transformer) passes its own
        rule: then the customers are out whichever member operated, and a fuse feeding only that transformer is
        the better bet even on one call with "my neighbours are out too". Backbone devices (recloser, breaker,
        substation) always keep theirs, and one call never lifts a fuse over customers the transformer does not
        share."""
        g, best, best_p = self.grid, -1, -1.0
        out = self._out_sps[members[0]]  # the same service points below every member
        for m in members:
            if self._closed_tele[m]:
                continue
            rs = self._ruleset_dev(m)
            rule = rs.devices.get(g.rule_kind[m])
            if rule is None or (
                out < rule.min_calls and (rule.children != "evidence" or not self._own_passes(members[-1]))
            ):
                continue
            p = rs.likelihood.fault_prior.get(g.kind[m], 0.0)
            if p > best_p:
                best, best_p = m, p
        return best

    def _twin_above(self, d: int) -> int:
        """The predicted device above ``d`` with the same customers that the prior chose over it, else -1."""
        members = self.grid.equiv[d]
        if members is None:
            return -1
        c = self._equiv_choice(members)
        return c if c >= 0 and self._pred[c] and members.index(c) < members.index(d) else -1

    def _own_passes(self, d: int) -> bool:
        """Whether ``d``'s own rule (count rules or likelihood) passes on the evidence beneath it."""
        out = self._out_sps[d]
        if out == 0 or self._on[d] or self._closed_tele[d]:
            return False
        if d in self._lifted and d in self._event_at:  # judged when a lockout above froze its evidence
            return True
        g = self.grid
        rs = self._ruleset_dev(d)
        # judged by what the device serves (outage.grid._roles): a transformer with devices below it, or above
        # the feeder heads, by the backbone or substation rule
        rule = rs.devices.get(g.rule_kind[d])
        if rs.rollup == "likelihood":  # the rule's call floor still applies: one call never lifts a fuse
            return rule is not None and out >= rule.min_calls and self._oper[d] > self._below[d]
        if rule is None:
            return False
        service_xfmr = g.rule_kind[d] == "transformer"
        if service_xfmr:
            children, n_children = out + self._hint[d], g.n_sp[d]
            if out == 1 and self._nohint[d] == 1 and n_children > 1:
                # a lone caller who says the neighbours are not out: a service-level problem (a service drop or
                # customer-side), not the transformer, however few customers the transformer has
                return False
        elif rule.children == "evidence":
            children, n_children = self._active[d], g.n_children[d]
        else:
            children, n_children = self._pred_children[d], g.n_children[d]
        total = g.device_customers[d]
        ok = rule.passes(out, children, self._out_cust[d] / total if total else 0.0, n_children)
        if rs.likelihood_check and not self._silence_measured(d):
            # calls only: a second opinion from the likelihood comparison (outage.rules), which weighs what the
            # count rules cannot see — the silence of the customers below the device who did not call. When it
            # clearly disagrees, it wins: a stray call on a second lateral no longer lifts a transformer outage to
            # a big fuse, and a small fuse whose calls all came from one of its transformers is still predicted.
            # A backbone device (its rule counts predicted children) is lifted this way only once at least one
            # child outage below it is predicted: calls scattered over laterals, or below devices telemetry shows
            # closed, never lift it on their own
            margin = rs.likelihood_margin
            diff = self._oper[d] - self._below[d]
            if service_xfmr:
                # a transformer is only ever held back: one call saying "my neighbours are out too" (often wrong)
                # passes its count rule, but not against the silence of a dozen neighbours. On one service point
                # the answer says nothing: the transformer and the drop cut off the same customer
                return ok and not (n_children > 1 and diff < -margin)
            if ok and diff < -margin:
                return False
            if not ok and diff > margin:
                if out >= rule.min_calls and (rule.children == "evidence" or self._pred_children[d] > 0):
                    return True
                # RuleSet.likelihood_below_floor: below its call floor, a lateral device (fuse, sectionalizer)
                # still operated when the likelihood says so on pending evidence alone (a small fuse whose few
                # customers are silent is likelier than its transformer: it fails ten times as often); a settled,
                # earlier outage never helps it, nor does it lift a device a crew has just closed (a call from below
                # it then is a nested outage); a fuse feeding just one transformer is left to its class's choice
                # (_equiv_choice, _lone_call_transformer): against its twin it would win on the prior alone
                return (rs.likelihood_below_floor and rule.children == "evidence" and self._lik_out[d] == out
                        and g.equiv[d] is None and not self._closed_by_crew(d, rs))
        return ok

    def _on_its_floor(self, d: int) -> bool:
        """Whether predicted ``d`` has its rule's call floor (``min_calls``; of a class of devices with the same
        customers, the lowest floor). Only then does it count as a predicted child for the backbone rule above
        it: a fuse the likelihood lifts on one call is the likeliest device to patrol, not evidence that the
        feeder is out, so lone calls spread over laterals never add up to a recloser or breaker."""
        g = self.grid
        rs = self._ruleset_dev(d)
        floors = [r.min_calls for m in (g.equiv[d] or (d,)) if (r := rs.devices.get(g.rule_kind[m])) is not None]
        return self._out_sps[d] >= min(floors, default=1)

    def _closed_by_crew(self, d: int, rs) -> bool:
        """Whether a crew restored an outage at ``d`` within the nested window before the latest call."""
        tr = self._restored_at.get(d)
        return (tr is not None and bool(self._call_times)
                and self._call_times[-1] - tr.event.restored_at <= rs.nested_window)

    def _reevaluate(self, chain: list[int], t: datetime | None = None) -> None:
        """Re-evaluate rules bottom-up along a chain; demoted devices dissolve their events. With ``t``, a device
        promoted without new evidence of its own (power-on evidence expired) gathers the events below it."""
        parent, equiv = self.grid.parent, self.grid.equiv
        self._update_likelihood(chain)
        demoted = []
        promoted = False
        for d in chain:
            new = self._passes(d)
            if new != self._pred[d]:
                self._pred[d] = new
                if new:
                    promoted = True
                else:
                    demoted.append(d)
            counted = new and self._on_its_floor(d)
            if counted != self._counted[d]:
                self._counted[d] = counted
                members = equiv[d]  # one device of a class is predicted: it counts as the class's child
                p = parent[members[0] if members is not None else d]
                if p >= 0:
                    self._pred_children[p] += 1 if counted else -1
        for d in demoted:
            tr = self._event_at.get(d)
            if tr is not None and not tr.frozen:
                up = self._twin_above(d)
                # the prediction moved up to a device with the same customers: roll the event up
                if up < 0 or self._gather(up, tr.event.last_evidence or self.clock()) is None:
                    self._dissolve(tr)
        if promoted and t is not None:
            top = -1
            for d in chain:
                if self._pred[d]:
                    top = d
            # a worked or SCADA-confirmed outage above: its customers are out whether or not top operated, and the
            # ping that verifies the promotion would only hear them so
            if (
                top >= 0
                and top not in self._event_at
                and any(not c.frozen and c.event.open for c in self._under.get(top, ()))
                and self._frozen_over(self.grid.parent[top]) is None
            ):
                tr = self._gather(top, t)
                if tr is not None:
                    self._verify(tr, t)  # a new prediction is verified however it came about

    # ================================================================ placing evidence in events
    def _place(self, k: int, chain: list[int], t: datetime, ami_t: datetime | None = None) -> _Track:
        """The pending event for ``k``: at the highest predicted device of its chain that takes it (``_gather``),
        merging events below it."""
        for top in reversed([d for d in chain if self._pred[d]]):
            tr = self._gather(top, t, ami_t=ami_t, own=(k, chain))
            if tr is not None:
                return tr
        d = chain[0] if chain else -1
        if d >= 0 and self._lone_call_transformer(d, k):
            tr = self._event_at.get(d)
            if tr is None:
                reason = f"one call: transformer {self.grid.device_ids[d]} likelier than the service drop"
                tr = self._new_track(d, -1, t, EventState.UNCONFIRMED, actor=ENGINE, reason=reason)
                tr.lone = True
                self._lone_tracks[tr.event.event_id] = tr
            return tr
        tr = self._new_track(-1, k, t, EventState.UNCONFIRMED, actor=ENGINE, reason="single-service call")
        self._lone_tracks[tr.event.event_id] = tr
        return tr

    def _lone_call_transformer(self, d: int, k: int) -> bool:
        """Calls only, ``k`` the one customer out below distribution transformer ``d``, whose rule does not pass:
        whether the transformer failing explains the call better than ``k``'s own service drop, by the likelihood
        model (:mod:`outage.rules`). An event is made for the call either way; it belongs on the likelier device:
        a transformer fails more often than one drop comes down, so on a transformer of a few customers it is the
        better bet unless the caller says the neighbours are not out; the silence of the others tells against it
        as their number grows. A fuse feeding only this transformer (the same customers) adds its own, higher,
        prior. The transformer is not predicted by this (no backbone rule counts it as a predicted child): the
        event only sits there."""
        g = self.grid
        rs = self._ruleset_dev(d)
        if (
            g.rule_kind[d] != "transformer"
            or (self.meters is not None and g.metered[k])  # pinging the meters will tell
            or self._out_sps[d] != 1
            or not rs.likelihood_check
            or self._silence_measured(d)
            or self._oper[d] == -math.inf
            or k not in self._sp_ev
        ):
            return False
        terms = self._lik_terms(rs, self._ami_at(d))
        logp = terms[0]
        # oper less the caller's own evidence terms: the prior ratio and the silence of d's other customers
        base = self._oper[d] - self._esum[d] - logp.get("service", -9.0)
        members = g.equiv[d]
        if members is not None:  # a fuse feeding only this transformer could have operated too: the class's prior
            own = logp.get(g.kind[d], -9.0)
            base += math.log(sum(math.exp(logp.get(g.kind[m], -9.0) - own)
                                 for m in members if not self._closed_tele[m]))
        # the answer, once: "neighbours out too" for d, "not out" against it (_evidence_llr); nothing on a caller alone
        h = self._sp_ev[k][1] if g.n_sp[d] > 1 else 0.0
        return base + h > 0.0

    def _gather(
        self, top: int, t: datetime, ami_t: datetime | None = None, own: tuple[int, list[int]] | None = None
    ) -> _Track | None:
        """The pending event at ``top`` (created if needed), with every pending event below it merged in — except
        events whose meters went out (or whose customers called) well before the top's meters did (AMI time
        separation: meters time-stamp when the power went, so an earlier, separate outage stays its own event).

        ``own`` is the service point (and its chain) whose new evidence caused the gathering; the returned event
        is where that evidence belongs. Evidence without an outage time (a call, a ping: ``ami_t`` is None) under
        such an earlier outage belongs to it, not to the top: it says nothing about when the power went."""
        tr = self._event_at.get(top)
        if tr is not None:
            tr.lone = False  # predicted now
        # the top's outage time is the newest last gasp among what it gathers: meters below a device that operated
        # go dark together, so a meter that went dark well before them was out already (an earlier, separate fault)
        children = [c for c in self._under.get(top, ()) if not c.frozen and c is not tr and c.event.open]
        ref = ami_t
        if tr is not None and tr.newest_gasp is not None and (ref is None or tr.newest_gasp > ref):
            ref = tr.newest_gasp
        for child in children:
            if child.newest_gasp is not None and (ref is None or child.newest_gasp > ref):
                ref = child.newest_gasp
        keep_before = None if ref is None else ref - self._ruleset_dev(top).ami_separation
        parted: dict[_Track, int] = {}
        if ref is None and children:
            keep_before, parted = self._call_onset(top, tr, children, own, t)
        absorb, home = [], None
        for child in children:
            k = parted.get(child)
            if k is not None:
                # its first call came alone, before the later outage began: a single-service outage of its own; the
                # rest of it belongs to the later outage
                split = self._split_off(child, k)
                if own is not None and own[0] == k:
                    home = split
            # when the child went dark: its newest last gasp, else (calls only, the gasps lost) at the latest when
            # its first call came — either way, well before the top's meters means a separate, earlier outage
            dark = child.newest_gasp if child.newest_gasp is not None else child.event.start
            if keep_before is not None and dark < keep_before:
                if not _holds(child, own):
                    continue
                if ami_t is None:
                    home = child
                    continue
            absorb.append(child)
        if tr is None:
            if home is not None and not absorb:
                return home
            if self._below_backbone_floor(top, absorb, own):
                return None
            tr = self._new_track(
                top,
                -1,
                t,
                EventState.UNCONFIRMED,
                actor=ENGINE,
                reason=f"roll-up to {self.grid.kind[top]} {self.grid.device_ids[top]}",
            )
            if self._one_service_point(tr):  # a call from below it may be customer-side too
                self._lone_tracks[tr.event.event_id] = tr
        for child in absorb:
            self._absorb(tr, child, t, ENGINE, f"rolled up to {self.grid.device_ids[top]}")
        if tr.sps:
            self._refresh(tr)
        return home or tr

    def _below_backbone_floor(self, top: int, absorb: list[_Track], own: tuple[int, list[int]] | None) -> bool:
        """Whether a new event at backbone device ``top`` (a recloser, breaker or substation: its rule counts
        predicted children) would begin with fewer service points than its call floor (``min_calls``), the rest of
        the evidence below it being earlier, separate outages. Then the evidence that predicted ``top`` is theirs:
        one late call must not open an event as wide as the device (``_place`` tries the next device down)."""
        rule = self._ruleset_dev(top).devices.get(self.grid.rule_kind[top])
        if rule is None or rule.children == "evidence":
            return False
        sps = {k for c in absorb for k in c.sps}
        if own is not None:
            sps.add(own[0])
        return len(sps) < rule.min_calls

    def _call_onset(
        self,
        top: int,
        tr: _Track | None,
        children: list[_Track],
        own: tuple[int, list[int]] | None,
        t: datetime,
    ) -> tuple[datetime | None, dict[_Track, int]]:
        """Calls only: when the outage at ``top`` began, if the events below it split in time into earlier ones
        and a later group that were likelier separate outages than one (:mod:`outage.separation`, at odds
        ``RuleSet.call_separation_odds``); else None. With it, the events below whose first call alone is earlier
        (``_first_call_apart``), each with that caller's service point: that call is an outage of its own, the rest of
        the event belongs to the later one.

        Each event below starts at its first call; the split is tried after each of them in turn (the earlier
        part must be events below: the top's own evidence and the call being placed are part of its outage), and
        before the second caller of each event whose first caller called alone. Were it all one outage, the top's
        customers outside the earlier events would have been out, and mostly silent, since before the earlier
        events' first calls; as separate outages they are out only since shortly before the later group's first
        call. The silence weighs with every customer who has not called, not only with the callers so far, so the
        split is judged as soon as the later group's first call rolls the earlier events up."""
        rs = self._ruleset_dev(top)
        g, lk = self.grid, rs.likelihood
        p_call = self._call_rate(rs)
        origin = t

        def when(k: int, tr_: _Track) -> float:
            return (self._sp_called.get(k, tr_.event.start) - origin).total_seconds()

        log_service = math.log(lk.fault_prior.get("service", 1e-3))
        # (first call, call times, customers without a call, log prior of its device, the event below or None for
        # the top's own evidence, and for an event whose first call came alone: that call and when the rest began)
        units = []
        for c in children:
            apart = self._first_call_apart(c)
            first = (when(apart[0], c), apart[2], apart[0]) if apart is not None else None
            units.append((c.event.start, *self._outage_terms(c, origin, lk), c, first))
        own_calls = [when(k, tr) for k, reps in tr.sps.items() if reps] if tr is not None else []
        if own is not None and not any(_holds(c, own) for c in children) and own[0] not in (tr.sps if tr else ()):
            own_calls.append(0.0)
        if own_calls:
            units.append((origin + timedelta(seconds=min(own_calls)), own_calls, 0, 0.0, None, None))
        units.sort(key=lambda u: u[0])
        median = rs.call_delay_median.total_seconds()
        window = rs.separation.total_seconds()
        others = g.n_sp[top]
        best, onset, split = math.log(rs.call_separation_odds), None, {}
        memo: dict = {}

        def weigh(earlier: list, later: list) -> float | None:
            if not later or not any(cs for cs, _, _ in earlier):
                return None
            silent = others - sum(len(cs) + q for cs, q, _ in earlier) - len(later)
            return log_odds_separate(earlier, later, max(0, silent), 0.0, p_call, median, rs.call_delay_sigma, window,
                                     memo)

        onsets = sorted({u[0] for u in units[1:]} | {u[5][1] for u in units if u[5] is not None})
        for at in onsets:
            before = [u for u in units if u[0] < at]
            if any(u[4] is None for u in before):
                break  # the top's own evidence is in the earlier part
            after = [c for u in units if u[0] >= at for c in u[1]]
            # the events below that began before the onset, whole; or, where one's first call alone came before it
            # and the rest after, that first call as an earlier outage of its own and the rest part of the later one
            options = [([(u[1], u[2], u[3]) for u in before], after, {})]
            apart = [u for u in before if u[5] is not None and u[5][1] >= at]
            if apart:
                whole = [(u[1], u[2], u[3]) for u in before if u[5] is None or u[5][1] < at]
                lone = [([u[5][0]], 0, log_service) for u in apart]
                rest = [c for u in apart for c in u[1] if c != u[5][0]]
                options.append((whole + lone, after + rest, {u[4]: u[5][2] for u in apart}))
            for earlier, later, parted in options:
                lo = weigh(earlier, later)
                if lo is not None and lo > best:
                    best, onset, split = lo, at, parted
        return onset, split

    def _lift_under_lockout(self, b: int, t: datetime) -> None:
        """Calls only: device ``b`` locked out at ``t``. From then on every customer below it is out and calls
        because of ``b``, so what the pending outages below it that began earlier say about the devices between
        them and ``b`` is all in: it is judged now, with the silence of those devices' customers counted until
        ``t`` only (:mod:`outage.separation`: each caller's delay from the device's onset, each silent customer
        silent for that long). The count rules and the likelihood count silence as if it had lasted for hours; a
        fuse whose first calls came on two of its transformers minutes before the breaker above it locked out was
        left as two transformer outages, and its customers' later calls went to the lockout.

        Greedily, while one is likelier by ``RuleSet.likelihood_margin`` (log odds), the device whose one outage
        explains the pending events below it better than they explain themselves (each its own outage, a single
        service point's a service drop) is predicted (``_lifted``, kept until its event closes) and gathers them.
        Only where the rule set weighs the likelihood on calls, and on at least the device rule's call floor."""
        g = self.grid
        if self._ami_at(b):
            return  # last gasps time-stamp when the power went: AMI time separation (_gather) has judged
        while True:
            pending = [c for c in self._under.get(b, ()) if not c.frozen and c.event.open and c.event.start < t]
            below: dict[int, list[_Track]] = {}
            for c in pending:
                d = g.parent[c.dev] if c.dev >= 0 else g.sp_first[c.sp]
                while d >= 0 and d != b:
                    below.setdefault(d, []).append(c)
                    d = g.parent[d]
            best, lift = 0.0, -1
            for d, tracks in below.items():
                if len(tracks) < 2 or self._pred[d] or self._closed_tele[d] or self._on[d]:
                    continue
                rs = self._ruleset_dev(d)
                rule = rs.devices.get(g.rule_kind[d])
                if rule is None or not self._likelihood_kept(rs, False):
                    continue
                if sum(1 for c in tracks for reps in c.sps.values() if reps) < rule.min_calls:
                    continue  # the rule's call floor holds here too
                odds = self._one_outage_odds(d, tracks, t, rs)
                if odds > max(best, rs.likelihood_margin):
                    best, lift = odds, d
            if lift < 0:
                return
            self._lifted.add(lift)
            if self._gather(lift, t) is None:
                self._lifted.discard(lift)
                return
            self._reevaluate(self._chain_from(lift))

    def _one_outage_odds(self, d: int, tracks: list[_Track], t: datetime, rs) -> float:
        """log odds that device ``d`` operated and its outage made the calls of pending events ``tracks`` below
        it, against each event being its own outage, all heard until ``t`` (:func:`_lift_under_lockout`)."""
        lk = rs.likelihood
        args = (0.0, self._call_rate(rs), rs.call_delay_median.total_seconds(), rs.call_delay_sigma,
                rs.separation.total_seconds())
        apart, together = 0.0, []
        for tr in tracks:
            heard, silent, log_prior = self._outage_terms(tr, t, lk)
            if heard:
                apart += log_prior + onset_log_evidence(heard, silent, *args)
                together += heard
        silent = max(0, self.grid.n_sp[d] - len(together))
        log_prior = math.log(lk.fault_prior.get(self.grid.kind[d], 1e-3))
        return log_prior + onset_log_evidence(together, silent, *args) - apart

    def _outage_terms(self, tr: _Track, origin: datetime, lk) -> tuple[list[float], int, float]:
        """Pending event ``tr`` as an outage of its own, for :mod:`outage.separation`: its callers' first calls
        (seconds from ``origin``), its service points without a call, and the log prior of its device failing (a
        single service point's: a service drop)."""
        g = self.grid
        called = self._sp_called
        calls = [(called.get(k, tr.event.start) - origin).total_seconds() for k, reps in tr.sps.items() if reps]
        n, kind = (g.n_sp[tr.dev], g.kind[tr.dev]) if tr.dev >= 0 else (1, "service")
        return calls, max(0, n - len(calls)), math.log(lk.fault_prior.get(kind, 1e-3))

    def _first_call_apart(self, tr: _Track) -> tuple[int, datetime, datetime] | None:
        """Calls only: the service point of pending event ``tr`` (of several) whose customer called first, alone,
        with when they called and when the next service point's first call came; None if two called first together,
        or the event carries a hazard or medical equipment (which stay with it). Such a first call may be an
        outage of its own (a service drop) that the later outage's calls joined on the same device."""
        if len(tr.sps) < 2 or tr.frozen or tr.event.hazards or tr.event.medical:
            return None
        firsts = sorted((self._sp_called.get(k, tr.event.start), k) for k, reps in tr.sps.items() if reps)
        if len(firsts) < 2 or firsts[0][0] >= firsts[1][0] or len(firsts) < len(tr.sps):
            return None
        return firsts[0][1], firsts[0][0], firsts[1][0]

    def _split_off(self, tr: _Track, k: int) -> _Track:
        """Take service point ``k`` (its first call came alone, well before the rest: ``_first_call_apart``) out of
        pending event ``tr`` into a single-service event of its own, which begins with that call."""
        t = self._sp_called.get(k, tr.event.start)
        reason = f"single-service call, before the outage at {self.grid.device_ids[tr.dev]}" if tr.dev >= 0 else (
            "single-service call")
        new = self._new_track(-1, k, t, EventState.UNCONFIRMED, actor=ENGINE, reason=reason)
        self._lone_tracks[new.event.event_id] = new
        self._move_sp(tr, new, k)
        tr.event.start = min(self._sp_called.get(j, tr.event.start) for j in tr.sps)
        for changed in (new, tr):
            self._rebuild_reports(changed)
            self._refresh(changed)
        return new

    def _dissolve(self, tr: _Track) -> None:
        """A device whose rule no longer passes: cancel its event and re-place its evidence."""
        sps = tr.sps
        tr.sps = {}
        tr.cust = 0
        self._unregister(tr)
        now = tr.event.last_evidence or self.clock()
        self._transition(
            tr,
            EventState.CANCELLED,
            now,
            ENGINE,
            f"superseded: evidence no longer supports {self.grid.device_ids[tr.dev]}",
        )
        self._changes.append(EventCancelled(tr.event.event_id, now, "superseded"))
        placed: list[_Track] = []
        for k, reps in sps.items():
            self._sp_track.pop(k, None)
            gasp = self._sp_gasp.get(k)
            new = self._place(k, self.grid.chain(k), self._sp_last.get(k, now), ami_t=gasp)
            if gasp is not None and (new.first_gasp is None or gasp < new.first_gasp):
                new.first_gasp = gasp
            if gasp is not None and (new.newest_gasp is None or gasp > new.newest_gasp):
                new.newest_gasp = gasp
            self._sp_put(new, k, [])
            new.event.service_points_out += 1
            self._sp_track[k] = new
            for r in reps:
                new.sps[k].append(r)
                self._report_track[r] = new
            self._rebuild_reports(new)
            self._refresh(new)
            placed.append(new)
        tr.event.reports.clear()
        for new in dict.fromkeys(placed):
            self._verify(new, now)

    def _absorb(self, into: _Track, child: _Track, t: datetime, actor: str, reason: str) -> None:
        """Move ``child``'s evidence into ``into`` and close ``child`` as merged."""
        for k, reps in child.sps.items():
            if k in into.sps:
                into.sps[k].extend(reps)
            else:
                self._sp_put(into, k, list(reps))
                into.event.service_points_out += 1
            self._sp_track[k] = into
            for r in reps:
                self._report_track[r] = into
        ev, cev = into.event, child.event
        ev.reports.extend(cev.reports)
        ev.last_gasps += cev.last_gasps
        ev.power_on_evidence += cev.power_on_evidence
        ev.medical += cev.medical
        for h in cev.hazards:
            if h not in ev.hazards:
                ev.hazards.append(h)
        if child.first_gasp is not None and (into.first_gasp is None or child.first_gasp < into.first_gasp):
            into.first_gasp = child.first_gasp
        if child.newest_gasp is not None and (
            into.newest_gasp is None or child.newest_gasp > into.newest_gasp
        ):
            into.newest_gasp = child.newest_gasp
        self._note_onset(into)
        ev.merged_from.append(cev.event_id)
        ev.merged_from.extend(cev.merged_from)
        if cev.start < ev.start:
            ev.start = cev.start
        if cev.nested_from and not ev.nested_from:
            ev.nested_from = cev.nested_from
        child.sps = {}
        child.cust = 0
        self._unregister(child)
        cev.merged_into = ev.event_id
        self._transition(child, EventState.CANCELLED, t, actor, f"merged into {ev.event_id}: {reason}")
        self._changes.append(EventMerged(cev.event_id, t, ev.event_id))

    # ================================================================ verification (AMI ping)
    def _verify(self, tr: _Track, t: datetime) -> None:
        """Ping a sample of meters (per transformer) under a new prediction; answers become evidence."""
        if self.meters is None or tr.frozen or not tr.event.open:
            return
        g = self.grid
        dev = tr.dev if tr.dev >= 0 else g.sp_first[tr.sp]
        if dev < 0 or dev in tr.pinged:
            return
        tr.pinged.add(dev)
        rs = self._ruleset_dev(dev)
        per_xfmr: dict[int, int] = {}
        sample: list[int] = []
        if tr.dev < 0 or g.is_transformer[tr.dev]:
            # are the callers' own meters on? then it is a customer-side problem, not an outage
            sample.extend(k for k, reps in tr.sps.items() if reps and g.metered[k])
        explained: dict[int, bool] = {}
        for k in g.sp_order[g.lo[dev] : g.hi[dev]].tolist():
            if k in self._sp_track or k in self._sp_on or k in self._gasps or not g.metered[k]:
                continue
            x = g.sp_first[k]
            if per_xfmr.get(x, 0) >= rs.ping_per_transformer:
                continue
            if x not in explained:
                explained[x] = self._explained_between(x, dev, tr)
            if explained[x]:
                continue
            per_xfmr[x] = per_xfmr.get(x, 0) + 1
            sample.append(k)
            if len(sample) >= rs.ping_cap:
                break
        if not sample:
            return
        answers = self._ping(sample, t, rs)
        for k in sample:
            a = answers[k]
            holder = self._sp_track.get(k) or tr
            holder.event.pings[a] = holder.event.pings.get(a, 0) + 1
            holder.event.mark_changed()
            if a == PING_OFF:
                if k not in self._sp_track:
                    self._add_out(k, t, source="ping")
            elif a == PING_ON:
                self._add_on(k, t)

    def _explained_between(self, x: int, top: int, tr: _Track) -> bool:
        """Whether an open event other than ``tr`` sits on a device from ``x`` up to (not including) ``top``: its
        meters are off whether or not ``top`` operated, so pinging them cannot verify ``top``."""
        g, d = self.grid, x
        while d >= 0 and d != top:
            other = self._event_at.get(d) or self._frozen_at.get(d)
            if other is not None and other is not tr and other.event.open:
                return True
            d = g.parent[d]
        return False


def _holds(child: _Track, own: tuple[int, list[int]] | None) -> bool:
    """Is ``own`` (a service point and its chain, the evidence being placed) under event ``child``?"""
    return own is not None and (child.sp == own[0] or child.dev in own[1])

