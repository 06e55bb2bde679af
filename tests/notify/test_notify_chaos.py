"""Chaos: kill -9 the notification worker mid-batch, again and again, and count what reached a provider twice.

Before per-message recording a killed worker re-sent its whole claimed batch (results were written once per
batch): up to ``batch_size`` SMS and e-mails per kill. Then each result was committed before the sending thread
took another message: a kill re-sent at most one message per sending thread. Now a channel whose provider cannot
fold a re-send by its key sends one message at a time per process, so a kill makes at most one person get a message
twice; an SMS gateway declared to honour keys (``idempotent_channels``) still sends on the threads, and its re-sends
(at most one per thread) are answered with the first message's id.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import add_reports, drain_with_worker_process, statuses

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("keyed", [False, True], ids=["no-keys", "sms-keyed"])
def test_kill_9_repeatedly_re_sends_at_most_one_message_per_kill(db_url, db, gateway, smtp, keyed):
    n_sms, n_mail, threads, kills = 300, 200, 4, 3
    add_reports(db, [{"sms": f"+1555080{i:04d}", "prefer": "sms"} for i in range(n_sms)]
                + [{"email": f"c{i}@example.org", "prefer": "email"} for i in range(n_mail)])
    gateway.faults.mode, gateway.faults.delay = "slow", 0.01
    smtp.faults.mode, smtp.faults.delay = "slow", 0.01
    env = {**os.environ, "OMS_NOTIFY_SMS_URL": gateway.url, "OMS_NOTIFY_SMTP_HOST": "127.0.0.1",
           "OMS_NOTIFY_SMTP_PORT": str(smtp.port), "OMS_NOTIFY_LEASE_S": "2", "OMS_NOTIFY_BATCH_SIZE": "100",
           "OMS_NOTIFY_THREADS": str(threads), "PYTHONPATH": str(ROOT),
           "OMS_NOTIFY_IDEMPOTENT_CHANNELS": '["sms"]' if keyed else "[]"}
    cmd = [sys.executable, "-m", "api.commands", "notify", "worker", "--database-url", db_url, "--log-level", "warning"]
    total = n_sms + n_mail
    for k in range(kills):
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
        try:
            target = total * (k + 1) // (kills + 1)
            deadline = time.monotonic() + 60
            while gateway.received.total + smtp.received.total < target and time.monotonic() < deadline:
                time.sleep(0.005)
            os.kill(proc.pid, signal.SIGKILL)  # mid-batch: the rest of its claim is still 'claimed'
            proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
    assert statuses(db).get("claimed", 0) > 0  # the last kill left claims behind
    drain_with_worker_process(db, cmd, env, ROOT, total, timeout=90)
    assert statuses(db) == {"sent": total}
    assert len(gateway.received.deliveries) == n_sms and len(smtp.received.deliveries) == n_mail  # nothing lost
    resent_sms = gateway.received.resubmitted + gateway.received.duplicates  # re-sent, folded by key or not
    twice = gateway.received.duplicates + smtp.received.duplicates  # what a person received twice
    print(f"\nchaos ({'SMS keyed' if keyed else 'no keys'}): {kills} kills -9, {threads} threads: {resent_sms} SMS "
          f"re-sent ({gateway.received.resubmitted} folded by the gateway's key), {twice} messages received twice")
    assert twice <= kills  # one message in flight per process on the channels without keys
    if keyed:
        assert resent_sms <= kills * threads
    else:  # SMS on the one-at-a-time lane too: nothing relies on the gateway's key
        assert resent_sms + smtp.received.duplicates <= kills
