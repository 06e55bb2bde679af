"""Static snapshots of the maps that any web server or CDN can serve to millions during a storm.

A snapshot directory holds the page(s), the GeoJSON they poll, and every asset they load::

    public.html  public.geojson  roads.geojson  basemap.geojson  assets/...   (always; no address search: it
                                                                              needs the service)
    dispatcher.html  dispatcher.geojson  network.geojson            (include_dispatcher=True; keep it private)
    _headers      Cache-Control and ETag per file, in the Netlify / Cloudflare Pages format
    etags.json    the same as JSON, for a server or CDN rule to read

:class:`SnapshotPublisher` regenerates it **on change, at most every** ``min_interval_s`` seconds: ``publish`` is
cheap to call on every engine tick (it returns ``deferred`` without building anything while the interval has not
passed), builds the collections otherwise, and writes only when their content changed (``updated_at`` alone is not
a change). Files are replaced atomically (write to a temporary name, then rename), so a server never sends half a
file. The clock is injected for tests.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from api.maps.assets import copy_assets
from api.maps.geojson import MapData, dumps, etag_of
from api.maps.render import PageConfig, dispatcher_html, public_html
from api.maps.state import MapState


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PublishResult:
    """``status``: ``written`` (files replaced), ``unchanged`` (built, same content) or ``deferred`` (too soon)."""

    status: str
    at: datetime
    etag: str | None = None
    files: tuple[str, ...] = ()
    next_allowed: datetime | None = None


def write_atomic(path: Path, body: bytes) -> None:
    """Replace ``path`` with ``body`` so readers see the old or the new file, never a partial one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(body)
    os.replace(tmp, path)


@dataclass
class SnapshotPublisher:
    """Writes map snapshots to ``out_dir``; see the module docstring."""

    out_dir: Path
    data: MapData
    page: PageConfig = field(default_factory=PageConfig)
    min_interval_s: float = 60.0
    include_dispatcher: bool = False
    clock: Callable[[], datetime] = utc_now

    def __post_init__(self) -> None:
        if self.min_interval_s < 0:
            raise ValueError(f"min_interval_s must be >= 0, got {self.min_interval_s}")
        self.out_dir = Path(self.out_dir)
        self._last_write: datetime | None = None
        self._last_content: dict[str, str] = {}  # file -> hash of its content without updated_at
        self._static_written = False
        self._headers: dict[str, dict] = {}

    @property
    def live_max_age(self) -> int:
        """How long a CDN or browser may cache the live GeoJSON: at most the publishing interval, at most 60 s."""
        return int(min(max(self.min_interval_s, 1), 60))

    def publish(self, state: MapState, force: bool = False) -> PublishResult:
        """Write the snapshot if ``state`` changed and the interval allows (``force`` ignores the interval)."""
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("the publisher's clock must return timezone-aware datetimes")
        if not force and self._last_write is not None:
            elapsed = (now - self._last_write).total_seconds()
            if elapsed < self.min_interval_s:
                next_allowed = datetime.fromtimestamp(self._last_write.timestamp() + self.min_interval_s, tz=UTC)
                return PublishResult("deferred", now, next_allowed=next_allowed)
        collections = {"public.geojson": self.data.public_collection(state)}
        if self.include_dispatcher:
            collections["dispatcher.geojson"] = self.data.dispatcher_collection(state)
        content = {name: etag_of(dumps({k: v for k, v in c.items() if k != "updated_at"}))
                   for name, c in collections.items()}
        if content == self._last_content and self._static_written:
            return PublishResult("unchanged", now, etag=self._headers["public.geojson"]["etag"])
        self.out_dir.mkdir(parents=True, exist_ok=True)
        written = [] if self._static_written else self._write_static()
        live_cache = f"public, max-age={self.live_max_age}, stale-while-revalidate={3 * self.live_max_age}"
        for name, collection in collections.items():
            cache = live_cache if name == "public.geojson" else "private, no-cache"
            written.append(self._write(name, dumps(collection), cache))
        self._write_manifests()
        self._last_content = content
        self._last_write = now
        return PublishResult("written", now, etag=self._headers["public.geojson"]["etag"], files=tuple(written))

    def _write(self, name: str, body: bytes, cache_control: str) -> str:
        write_atomic(self.out_dir / name, body)
        self._headers[name] = {"etag": etag_of(body), "cache_control": cache_control, "bytes": len(body)}
        return name

    def _write_static(self) -> list[str]:
        """Pages, roads, network and assets: written once per publisher (they do not change with the state)."""
        page_cache = "public, max-age=300"
        written = [self._write("public.html", public_html(self.data, self.page, search_url=None).encode(), page_cache),
                   self._write("roads.geojson", self.data.roads_body(), "public, max-age=86400")]
        if not self.page.tile_url:
            written.append(self._write("basemap.geojson", self.data.basemap_body(), "public, max-age=86400"))
        if self.include_dispatcher:
            written.append(self._write("dispatcher.html", dispatcher_html(self.data, self.page).encode(),
                                       "private, no-cache"))
            written.append(self._write("network.geojson", self.data.network_body(), "private, max-age=300"))
        copied = copy_assets(self.out_dir / "assets")
        written += [str(p.relative_to(self.out_dir)) for p in copied]
        self._static_written = True
        return written

    def _write_manifests(self) -> None:
        lines = []
        for name, h in sorted(self._headers.items()):
            lines += [f"/{name}", f"  Cache-Control: {h['cache_control']}", f"  ETag: {h['etag']}", ""]
        lines += ["/assets/*", "  Cache-Control: public, max-age=86400", ""]
        write_atomic(self.out_dir / "_headers", "\n".join(lines).encode())
        write_atomic(self.out_dir / "etags.json", json.dumps(self._headers, indent=2, sort_keys=True).encode())


def write_snapshot(out_dir: Path, data: MapData, state: MapState, page: PageConfig | None = None,
                   include_dispatcher: bool = True) -> PublishResult:
    """One-shot snapshot of both maps (``oms demo --headless --out DIR`` uses this)."""
    publisher = SnapshotPublisher(Path(out_dir), data, page or PageConfig(), min_interval_s=0,
                                  include_dispatcher=include_dispatcher)
    return publisher.publish(state, force=True)
