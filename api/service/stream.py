"""The live change stream: a publish/subscribe broker behind ``GET /stream`` (server-sent events).

Publishers are threads (the engine, the re-planner, request handlers); subscribers are SSE responses on the event
loop. Every message gets a sequence number used as the SSE ``id``; a reconnecting client sends ``Last-Event-ID``
and receives what it missed from a bounded replay buffer (or a ``reset`` message telling it to reload when the gap
is older than the buffer). A slow subscriber whose queue fills is dropped rather than slowing everyone down.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: Message types on the stream (issue 7's maps and issue 6's notifier subscribe to these).
TYPES = ("event_created", "event_updated", "event_reclassified", "event_merged", "event_restored",
         "event_cancelled", "assignment", "etr", "plan", "crew", "report", "reset", "figures")


@dataclass(frozen=True, slots=True)
class Message:
    seq: int
    type: str
    data: dict[str, Any]

    def sse(self) -> str:
        return f"id: {self.seq}\nevent: {self.type}\ndata: {json.dumps(self.data, default=_json_default)}\n\n"


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class Broker:
    def __init__(self, replay: int = 10_000, queue_size: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        self._buffer: deque[Message] = deque(maxlen=replay)
        self._subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = set()
        self._listeners: list = []
        self.queue_size = queue_size

    def listen(self, callback) -> None:
        """Call ``callback(message)`` after each publish, in the publishing thread (keep it short)."""
        self._listeners.append(callback)

    @property
    def seq(self) -> int:
        return self._seq

    def publish(self, type: str, data: dict[str, Any]) -> Message:
        """Publish from any thread."""
        if type not in TYPES:
            raise ValueError(f"stream: unknown message type {type!r}")
        with self._lock:
            self._seq += 1
            msg = Message(self._seq, type, data)
            self._buffer.append(msg)
            subscribers = list(self._subscribers)
        for loop, q in subscribers:
            try:
                loop.call_soon_threadsafe(_offer, self, loop, q, msg)
            except RuntimeError:  # loop closed
                self._drop(loop, q)
        for listen in self._listeners:
            listen(msg)
        return msg

    def _drop(self, loop, q) -> None:
        with self._lock:
            self._subscribers.discard((loop, q))

    def since(self, last_seq: int) -> list[Message] | None:
        """Messages after ``last_seq``, or ``None`` when some of them have left the buffer."""
        with self._lock:
            if last_seq >= self._seq:
                return []
            if not self._buffer or self._buffer[0].seq > last_seq + 1:
                return None
            return [m for m in self._buffer if m.seq > last_seq]

    async def subscribe(self, last_seq: int | None, keepalive_s: float) -> AsyncIterator[str]:
        """SSE text chunks for one client, starting after ``last_seq`` (or now)."""
        loop = asyncio.get_running_loop()
        q: asyncio.Queue = asyncio.Queue(maxsize=self.queue_size)
        with self._lock:
            self._subscribers.add((loop, q))
            current = self._seq
        try:
            yield f"retry: 3000\n: connected at seq {current}\n\n"
            if last_seq is not None:
                missed = self.since(last_seq)
                if missed is None:
                    yield Message(current, "reset", {"reason": "missed messages; reload state"}).sse()
                else:
                    for m in missed:
                        if m.seq <= current:
                            yield m.sse()
            while True:
                try:
                    msg = await asyncio.wait_for(q.get(), timeout=keepalive_s)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if msg is None:  # dropped for being too slow
                    yield Message(self._seq, "reset", {"reason": "client too slow; reload state"}).sse()
                    return
                if msg.seq > current:
                    yield msg.sse()
        finally:
            self._drop(loop, q)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)


def _offer(broker: Broker, loop, q: asyncio.Queue, msg: Message) -> None:
    try:
        q.put_nowait(msg)
    except asyncio.QueueFull:
        broker._drop(loop, q)
        while not q.empty():
            q.get_nowait()
        q.put_nowait(None)
