"""A daemon thread that drains a queue: the intake writer and the live engine are both one."""

from __future__ import annotations

import queue
import threading
from typing import Any


class QueueThread:
    """Owns ``_queue`` and the thread running ``_run``. Putting ``None`` on the queue asks ``_run`` to return
    once it has handled what was queued before it; :meth:`stop` does that and waits."""

    thread_name = "oms-worker"

    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=timeout)
            self._thread = None

    def _run(self) -> None:
        raise NotImplementedError
