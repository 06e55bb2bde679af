"""Every script, stylesheet and image the maps need, served by the app itself (nothing from a CDN).

Leaflet comes from the ``XStatic-Leaflet`` package; our own map code and styles live in ``api/maps/static``.
folium's default template would pull jQuery, Bootstrap, Font Awesome and Leaflet.awesome-markers from CDNs; the maps
do not use them (plain circle markers and our own CSS), so :func:`js_links`/:func:`css_links` replace folium's
defaults with just Leaflet and ours, at a base URL that is relative (``assets``) so the same HTML works under any
mount prefix and in a static snapshot directory.
"""

from __future__ import annotations

import mimetypes
import shutil
from pathlib import Path

import xstatic.pkg.leaflet as xleaflet

STATIC_DIR = Path(__file__).parent / "static"

#: URL prefix under the asset base -> directory on disk.
ASSET_ROOTS: dict[str, Path] = {
    "leaflet": Path(xleaflet.BASE_DIR),
    "oms": STATIC_DIR,
}
#: Files a map page loads, in order (relative to the asset base).
JS_FILES = ("leaflet/leaflet.js", "oms/oms-map.js", "oms/oms-public-forms.js", "oms/oms-public.js")
CSS_FILES = ("leaflet/leaflet.css", "oms/oms-map.css")
#: Versions in asset URLs so a long browser cache never serves a stale copy after an upgrade.
LEAFLET_VERSION = xleaflet.VERSION


def js_links(base: str = "assets") -> list[tuple[str, str]]:
    """folium ``default_js`` entries pointing at our served copies."""
    return [(Path(f).stem, f"{base}/{f}") for f in JS_FILES]


def css_links(base: str = "assets") -> list[tuple[str, str]]:
    """folium ``default_css`` entries pointing at our served copies."""
    return [(Path(f).stem + "_css", f"{base}/{f}") for f in CSS_FILES]


def resolve(path: str) -> Path | None:
    """The file on disk for an asset URL path like ``leaflet/images/layers.png``; None if unknown or outside."""
    prefix, _, rest = path.partition("/")
    root = ASSET_ROOTS.get(prefix)
    if root is None or not rest:
        return None
    root = root.resolve()
    candidate = (root / rest).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


def media_type(path: Path) -> str:
    kind, _ = mimetypes.guess_type(path.name)
    if path.suffix == ".js":
        return "text/javascript; charset=utf-8"
    return kind or "application/octet-stream"


def copy_assets(dest: Path) -> list[Path]:
    """Copy every asset the pages load (plus Leaflet's images) under ``dest``; returns the files written."""
    written = []
    for prefix, root in ASSET_ROOTS.items():
        for src in sorted(root.rglob("*")):
            if not src.is_file() or src.suffix in (".map",) or src.name.endswith(".esm.js") or src.name == "leaflet-src.js":
                continue
            target = dest / prefix / src.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
            written.append(target)
    return written
