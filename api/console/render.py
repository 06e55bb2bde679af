"""Page rendering for the console: Jinja2 with autoescaping, templates in ``templates/``."""

from __future__ import annotations

import hashlib
import json
import mimetypes
from functools import cache
from pathlib import Path

import jinja2
import xstatic.pkg.leaflet as xleaflet

HERE = Path(__file__).parent
STATIC = HERE / "static"

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


@cache
def asset_version() -> str:
    """A hash of our assets and Leaflet's version: URLs change when the files do, so caches never go stale."""
    h = hashlib.blake2b(xleaflet.VERSION.encode(), digest_size=6)
    for f in sorted(STATIC.rglob("*")):
        if f.is_file():
            h.update(f.read_bytes())
    return h.hexdigest()


def signin_html(*, csrf: str, error: str = "", name: str = "", title: str = "Outage management") -> str:
    return _env.get_template("signin.html").render(csrf=csrf, error=error, name=name, title=title,
                                                   v=asset_version())


def _script_json(text: str) -> str:
    """JSON safe inside a ``<script type="application/json">``: no ``</script>``, no HTML comment openers."""
    return text.replace("<", "\\u003c")


def console_html(*, user: str, role: str, csrf: str, p1_response_minutes: int, title: str = "Outage management",
                 clock_note: str = "", board: str = "null") -> str:
    """The console page; ``board`` is the board's JSON text (``board.json``), inlined so the grid fills at once.
    ``p1_response_minutes``: the P1 response target (``OMS_P1_RESPONSE_MINUTES``), shown and alerted on."""
    config = {"user": user, "role": role, "p1ResponseMinutes": p1_response_minutes, "version": asset_version()}
    return _env.get_template("console.html").render(user=user, role=role, csrf=csrf, title=title,
                                                    p1_response_minutes=p1_response_minutes, clock_note=clock_note,
                                                    config=_script_json(json.dumps(config)),
                                                    board=_script_json(board), v=asset_version())


def forbidden_html(*, user: str, role: str, csrf: str) -> str:
    return _env.get_template("forbidden.html").render(user=user, role=role, csrf=csrf, v=asset_version())


def static_file(name: str) -> Path | None:
    """One of our own assets by bare file name (the directory is flat, so no path can leave it)."""
    return STATIC / name if "/" not in name and "\\" not in name and (STATIC / name).is_file() else None


def media_type(path: Path) -> str:
    if path.suffix in (".js", ".mjs"):
        return "text/javascript; charset=utf-8"
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"
