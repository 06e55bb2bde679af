"""What the notification benches (``bench/notifications.py``, ``bench/chaos.py``'s ``notify_kill``) share: the
environment that points ``oms notify worker`` at the local providers, the worker processes themselves, and the wait
for the outbox to drain. The service process is :class:`api.simulation.loadgen.ServerProcess`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from api.store.models import OutboxMessage

ROOT = Path(__file__).resolve().parents[1]


def provider_env(smtp, gateway, **settings: str) -> dict[str, str]:
    """``OMS_NOTIFY_*`` for the local SMTP server and SMS gateway, plus ``settings`` (``LEASE_S="3"`` ->
    ``OMS_NOTIFY_LEASE_S=3``); the caller's own ``OMS_NOTIFY_*`` variables are left out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMS_NOTIFY_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "OMS_NOTIFY_SMTP_HOST": "127.0.0.1",
            "OMS_NOTIFY_SMTP_PORT": str(smtp.port),
            "OMS_NOTIFY_SMS_URL": gateway.url,
        }
    )
    env.update({f"OMS_NOTIFY_{k}": v for k, v in settings.items()})
    return env


class WorkerProcess:
    """One ``oms notify worker`` child process, its output appended to ``log_path``; ``start`` again after a kill."""

    def __init__(
        self,
        url: str,
        env: dict[str, str],
        log_path: Path,
        *,
        worker_id: str | None = None,
        log_level: str = "warning",
    ) -> None:
        self.cmd = [
            sys.executable,
            "-m",
            "api.commands",
            "notify",
            "worker",
            "--database-url",
            url,
            "--log-level",
            log_level,
        ] + (["--id", worker_id] if worker_id else [])
        self.env, self.log_path, self.proc = env, log_path, None

    def start(self) -> WorkerProcess:
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                self.cmd, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    def kill(self) -> None:
        """kill -9, as a crash would."""
        self.proc.kill()
        self.proc.wait()

    @staticmethod
    def stop_all(workers: list[WorkerProcess], timeout: float = 20.0) -> None:
        """SIGTERM every worker (they finish the messages in hand), then kill whichever has not exited in time."""
        for w in workers:
            w.proc.terminate()
        for w in workers:
            try:
                w.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                w.proc.kill()


def drain_outbox(db, timeout: float) -> float:
    """Wait until no outbox row is pending or claimed (or ``timeout`` s); returns the seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        with db.read() as s:
            open_rows = s.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status.in_(("pending", "claimed")))
            )
        if open_rows == 0:
            break
        time.sleep(0.5)
    return time.monotonic() - t0
