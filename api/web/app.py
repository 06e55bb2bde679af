"""The FastAPI application: ``create_app(settings)`` wires the database, intake writer, live engine and routes.

One process holds one live engine (the in-memory outage state of the territory); the database is the system of
record, so a restarted process rebuilds the engine from it before it serves. OpenAPI docs at ``/docs``.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from fastapi import FastAPI

from api import errors
from api.maps import PageConfig, create_router
from api.maps.fastpath import MapFastPath
from api.maps.state import ClockedProvider
from api.service.intake import IntakeWriter
from api.service.live import LiveEngine
from api.service.stream import Broker
from api.settings import Settings
from api.store.db import Database
from api.store.models import utcnow
from api.web import docs
from api.web.auth import TokenCache
from api.web.fastpath import IntakeFastPath
from api.web.figures import LiveFigures
from api.web.limits import BodyLimitMiddleware, EdgeGuard, RateLimiter, SecurityHeaders
from api.web.maps_provider import LiveMapProvider, dispatcher_access
from api.web.routes import admin, crew, dispatcher, intake, public, reports, review, session, stream
from api.web.routes.console import router as console_router
from api.web.routes.landing import router as landing_router
from api.web.routes.notify import router as notify_router
from api.web.schemas import MULTILINE_FIELDS

log = logging.getLogger("oms.api")


@dataclass
class ServiceState:
    """Everything a request handler may need, at ``request.app.state.oms``."""

    settings: Settings
    db: Database
    token_cache: TokenCache
    limiter: RateLimiter
    broker: Broker
    live: LiveEngine
    writer: IntakeWriter
    #: The service's clock: intake stamps and time checks, the engine, plans, the maps (a replay injects one).
    clock: Callable[[], datetime] = utcnow
    #: What that clock is, when it is not the wall clock ("storm time, 120x"): the maps and the console say so.
    clock_note: str = ""


def create_app(settings: Settings | None = None, *, network=None, page: PageConfig | None = None,
               clock: Callable[[], datetime] | None = None, clock_note: str = "",
               map_refresh_s: float = 1.0, freeze_heap: bool = False) -> FastAPI:
    """Build the app. ``network`` (a :class:`gis.network.Network`) overrides ``settings.territory``; ``page``
    configures the maps at ``/maps`` (utility name, polling intervals, tiles).

    ``clock`` (default the wall clock) is the service's time: received_at stamps and the intake time checks, the
    live engine and its plans, and the maps' time (labelled ``clock_note``, e.g. "storm time, 120x"). A replay
    injects its storm clock here. ``map_refresh_s``: the maps rebuild their state at most this often (0: on every
    read, for a driver that samples once per step). ``freeze_heap``: once started and warmed up, keep the
    long-lived heap out of the garbage collector's full collections (:func:`freeze_heap_when_warm`)."""
    settings = settings or Settings()
    db = Database(settings.database_url)
    broker = Broker()
    live = LiveEngine(settings, db, broker, clock=clock or utcnow)
    writer = IntakeWriter(db, batch_max=settings.intake_batch_max, on_committed=live.submit,
                          request_timeout=settings.intake_request_timeout_s, clock=clock or utcnow)
    state = ServiceState(settings, db, TokenCache(), RateLimiter(), broker, live, writer, clock or utcnow,
                         clock_note if clock is not None else "")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        live.start(network)
        writer.start()
        figures.start()
        if freeze_heap:
            freeze_heap_when_warm(app)
        try:
            yield
        finally:
            figures.stop()
            # Bounded: a writer stuck on a held lock must not keep SIGTERM from ending the process (its threads
            # are daemons; whatever it had not committed was never acknowledged).
            writer.stop(timeout=2.0)
            live.stop(timeout=2.0)
            db.dispose()

    app = FastAPI(title="OMS — outage management and crew dispatch", version="0.1.0", lifespan=lifespan,
                  docs_url=None, redoc_url=None,  # api.web.docs serves them, assets included (no CDN)
                  description="Trouble reports, outage events, crews and plans. Errors share one body: "
                              '`{"error": {"status", "code", "message", "details"}}`.')
    app.state.oms = state
    errors.install(app)
    # Starlette runs the last-added middleware first: the edge guard (addresses, control characters, public rate
    # limit, body deadline) wraps the security headers, which wrap the members' map path, the body limit, the
    # storm path and FastAPI.
    app.add_middleware(IntakeFastPath, state=state, routes={
        ("POST", "/reports"): (public.ANYONE.roles, public.accept_report),
        ("POST", "/ami"): (intake.INTEGRATION.roles, intake.accept_ami)})
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes,
                       overrides={"/admin/territory": 512 * 1024 * 1024})
    for module in (public, intake, dispatcher, crew, admin, reports, review, stream, session):
        app.include_router(module.router)
    app.include_router(notify_router)
    docs.install(app)
    app.include_router(landing_router)
    app.include_router(console_router)
    provider = LiveMapProvider(live, min_interval_s=map_refresh_s)
    if clock is not None:
        provider = ClockedProvider(provider, clock, clock_note)
    maps = create_router(provider, page=page or PageConfig(), dispatcher_dependencies=[dispatcher_access],
                         public_refresh_s=map_refresh_s)
    app.include_router(maps)
    app.state.maps = maps.map_service  # shared with snapshot writers (same MapData, same caches)
    # the headline figures on the stream, counted like the maps count them
    figures = app.state.figures = LiveFigures(maps.map_service, db, broker, clock or utcnow,
                                              settings.figures_interval_s)
    # what every member's browser fetches, from memory on the event loop (no framework, no thread hand-off)
    app.add_middleware(MapFastPath, service=maps.map_service, prefix=maps.prefix)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(EdgeGuard, settings=settings, limiter=state.limiter,
                       body_overrides={"/admin/territory": max(settings.body_timeout_s, 600.0)})
    _hoist_schemas(app)
    return app


def freeze_heap_when_warm(app: FastAPI, wait_s: float = 600.0) -> threading.Thread:
    """Once the maps have warmed up (territory, map layers, search index: the bulk of a long-lived heap), collect
    garbage once and move everything that is left out of the cyclic garbage collector's reach (``gc.freeze``).

    Without it every full collection walks the whole territory again: with the sample territory's ~400,000
    tracked objects a collection stopped every thread of the service (event loop, intake writer, engine) for
    0.1-1.1 s on the shared 2-core machine, several times at start-up and again in the middle of a storm, which
    is what set the p99 of map polls and of intake under ``bench/maps.py``'s viewers. A long-running service
    (``oms serve``) asks for it; tests do not (it would keep every earlier test's objects from the collector).
    The territory of a later upload stays in reach of the collector (it is built after the freeze)."""
    def run() -> None:
        app.state.maps.warmed.wait(wait_s)
        gc.collect()
        gc.freeze()
        log.info("heap frozen after warm-up: %d objects out of the collector's reach", gc.get_freeze_count())

    thread = threading.Thread(target=run, name="oms-heap-freeze", daemon=True)
    thread.start()
    return thread


#: The one error body (api.errors.error_body), and the failures any route may answer with.
ERROR_SCHEMA = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["status", "code", "message", "details"],
    "properties": {"status": {"type": "integer"}, "code": {"type": "string"}, "message": {"type": "string"},
                   "details": {"type": "array", "items": {"type": "object"}}}}}}
ERRORS = {"400": "malformed request", "401": "no or bad token", "403": "role not allowed",
          "404": "not found: an id in the path or the body that is well-formed but names nothing here",
          "408": "body too slow", "409": "conflict", "413": "body too large", "415": "unsupported media type",
          "422": "invalid input: malformed (per the schema), or against a rule the operation states in words", "429": "rate limited", "503": "unavailable"}


#: What api.web.schemas.CONTROL refuses, as an OpenAPI (ECMA) pattern.
NO_CONTROL = r"^[^\u0000-\u001f\u007f-\u009f]*$"
#: What api.web.schemas.CONTROL_IN_TEXT refuses (free text keeps tabs and line breaks).
NO_CONTROL_IN_TEXT = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"


def _document_control_rule(doc: dict) -> None:
    """State in every body schema (components and inline request bodies) what :class:`api.web.schemas.In` refuses:
    control characters in strings (a string with a pattern of its own gets the rule as ``allOf``), so that data
    valid per the schema is accepted."""
    models = list(doc.get("components", {}).get("schemas", {}).values())
    for ops in doc.get("paths", {}).values():
        for op in ops.values():
            for media in (op.get("requestBody") or {}).get("content", {}).values():
                schema = media.get("schema", {})
                models += [schema, schema.get("items", {})]
    for model in models:
        for name, prop in (model.get("properties") or {}).items():
            rule = NO_CONTROL_IN_TEXT if name in MULTILINE_FIELDS else NO_CONTROL
            for sub in (prop, *prop.get("anyOf", ()), prop.get("items", {})):
                if sub.get("type") != "string" or "format" in sub or "enum" in sub or "const" in sub:
                    continue
                if "pattern" not in sub:
                    sub["pattern"] = rule
                elif sub["pattern"] != rule:
                    sub.setdefault("allOf", []).append({"pattern": rule})
                if sub.get("minLength"):  # checked after stripping: that many characters from non-blank to non-blank
                    sub.setdefault("allOf", []).append({"pattern": _non_blank(sub["minLength"])})


def _non_blank(n: int) -> str:
    """A pattern for "at least ``n`` characters once stripped" (:class:`api.web.schemas.In` strips every string)."""
    return r"\S" if n == 1 else rf"\S[\s\S]{{{n - 2},}}\S"


def _document_errors(op: dict, path: str) -> None:
    """Every 4xx the edge can answer, with the error body (FastAPI's own 422 schema is not what we send); GeoJSON
    routes answer application/geo+json."""
    for param in op.get("parameters", []):  # the edge refuses control characters in every path and query string
        schema = param.get("schema", {})
        for sub in (schema, *schema.get("anyOf", ()), schema.get("items", {})):
            if sub.get("type") == "string" and "pattern" not in sub and param.get("in") in ("path", "query"):
                sub["pattern"] = NO_CONTROL
    responses = op.setdefault("responses", {})
    for status, text in ERRORS.items():
        responses[status] = {"description": responses.get(status, {}).get("description") or text,
                             "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    ok = responses.get("200", {}).get("content", {})
    if path.endswith(".geojson") and "application/json" in ok:
        ok["application/geo+json"] = ok.pop("application/json")
    if "304" not in responses and path.endswith(".geojson"):
        responses["304"] = {"description": "not modified (If-None-Match)"}


def _hoist_schemas(app: FastAPI) -> None:
    """Routes that parse their own JSON body document it with ``x-components`` (see :func:`api.errors.json_body`);
    move those nested schemas into ``components.schemas`` so the OpenAPI document is self-contained."""
    plain = app.openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = plain()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Error"] = ERROR_SCHEMA
        for path, ops in schema.get("paths", {}).items():
            for op in ops.values():
                components.update(op.pop("x-components", {}) if isinstance(op, dict) else {})
                _document_errors(op, path)
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        _document_control_rule(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi
