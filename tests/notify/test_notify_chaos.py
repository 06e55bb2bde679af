"""Chaos: kill -9 the notification worker mid-batch, again and again, and count what reached a provider twice.

Before per-message recording a killed worker re-sent its whole claimed batch (results were written once per
batch): up to ``batch_size`` SMS and e-mails per kill. Now each result is committed before the sending thread
takes another message, so a kill can re-send only the messages in flight: at most one per sending thread.
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
def test_kill_9_repeatedly_re_sends_at_most_the_messages_in_flight(db_url, db, gateway, smtp):
    n_sms, n_mail, threads, kills = 300, 200, 4, 3
    add_reports(db, [{"sms": f"+1555080{i:04d}", "prefer": "sms"} for i in range(n_sms)]
                + [{"email": f"c{i}@example.org", "prefer": "email"} for i in range(n_mail)])
    gateway.faults.mode, gateway.faults.delay = "slow", 0.01
    smtp.faults.mode, smtp.faults.delay = "slow", 0.01
    env = {**os.environ, "OMS_NOTIFY_SMS_URL": gateway.url, "OMS_NOTIFY_SMTP_HOST": "127.0.0.1",
           "OMS_NOTIFY_SMTP_PORT": str(smtp.port), "OMS_NOTIFY_LEASE_S": "2", "OMS_NOTIFY_BATCH_SIZE": "100",
           "OMS_NOTIFY_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
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
    sms_twice = gateway.received.resubmitted + gateway.received.duplicates  # without the key: texted twice
    mail_twice = smtp.received.duplicates  # SMTP has no idempotency: a re-send is a second e-mail
    print(f"\nchaos: {kills} kills -9, {threads} threads: {sms_twice} SMS and {mail_twice} e-mails sent twice")
    assert sms_twice + mail_twice <= kills * threads
