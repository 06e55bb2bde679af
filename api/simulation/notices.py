"""The demo's log files and its stand-in for SMS and e-mail: whole messages in ``notifications.log``, on storm time."""

from __future__ import annotations

import logging
import os
from datetime import datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from api.notify.channels import Outgoing

notices_log = logging.getLogger("oms.demo.notices")


def local_zone_name() -> str:
    """The machine's IANA zone (the browser showing the maps uses the same one), else UTC."""
    name = os.environ.get("TZ", "").lstrip(":")
    if not name:
        try:
            name = str(Path("/etc/localtime").resolve()).split("zoneinfo/", 1)[1]
        except (OSError, IndexError):
            name = "UTC"
    try:
        ZoneInfo(name)
    except (KeyError, ValueError, OSError):
        return "UTC"
    return name


class StormLogChannel:
    """Writes each notice whole, one line, stamped with storm time: ``14:20 notify eta to +49...: text``."""

    def __init__(self, name: str, clock, tz: tzinfo) -> None:
        self.name, self.clock, self.tz = name, clock, tz
        self.sent = 0

    def send(self, msg: Outgoing) -> str:
        self.sent += 1
        at: datetime = self.clock().astimezone(self.tz)
        notices_log.info("%s notify %s to %s: %s", f"{at:%H:%M}", msg.kind, msg.to or "(no contact)",
                         " ".join(msg.body.split()))
        return f"{self.name}:{self.sent}"

    def close(self) -> None:
        pass


def configure_logging(out: Path) -> None:
    """Everything (service, engine, worker) to ``out/demo.log``, notices to ``out/notifications.log``; the console
    stays for the status line."""
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / "demo.log", mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    notices = logging.FileHandler(out / "notifications.log", mode="w", encoding="utf-8")
    notices.setFormatter(logging.Formatter("%(message)s"))
    notices_log.addHandler(notices)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for noisy in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
