"""Service settings, read from the environment (prefix ``OMS_``) by pydantic-settings.

Every knob an operator turns lives here so that the service, the CLI and the tests agree on one source of truth.
``OMS_DATABASE_URL`` defaults to a SQLite file in the working directory (WAL mode): the demo needs nothing
installed. PostgreSQL is a URL away (``postgresql+psycopg://user@host/db``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """The service's configuration. Field names map to ``OMS_<NAME>`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="OMS_", extra="ignore")

    database_url: str = "sqlite:///oms.db"
    #: A territory GeoPackage; without one the service runs intake and dispatch bookkeeping only (no roll-up).
    territory: str | None = None

    #: Re-plan after this many seconds without new changes (a burst of 1,000 reports is one re-plan) ...
    replan_debounce_s: float = Field(2.0, ge=0.0)
    #: ... but never wait longer than this from the first change of a burst.
    replan_max_wait_s: float = Field(10.0, ge=0.0)
    #: ``auto``: apply the optimizer's plan to unlocked work; ``propose``: store it for a dispatcher to accept.
    plan_mode: Literal["auto", "propose"] = "auto"
    #: Optimizer time limit per re-plan.
    replan_time_limit_s: float = Field(5.0, gt=0.0)
    #: Solve in this process and stop after ``replan_solution_limit`` solutions rather than at the time limit: the
    #: same inputs then give the same plan however busy the machine is (replays, the demo), at the cost of intake
    #: waiting for the search.
    replan_deterministic: bool = False
    replan_solution_limit: int = Field(200, ge=1)
    #: An events CSV of past restorations (``device_kind``, ``cause``, ``on_site``, ``restored``: the format
    #: ``EtrModel.learn_history`` reads) the ETR model learns from at start-up, before the service's own journal.
    etr_history: str | None = None
    #: The live loop runs the engine's timers this often (wall-clock seconds); 0: only ``LiveEngine.tick`` runs
    #: them (a replay that drives its own clock).
    engine_tick_s: float = Field(1.0, ge=0.0)
    #: The stream's ``figures`` message (customers out, events, open, restored) follows event changes at most
    #: this often (seconds); 0: only when the driver asks (a replay samples them at every step of its clock).
    figures_interval_s: float = Field(2.0, ge=0.0)

    #: Intake: requests per minute per client (token or, for anonymous members, IP address) and burst size.
    rate_limit_per_minute: float = Field(60.0, gt=0.0)
    rate_limit_burst: int = Field(20, ge=1)
    #: Integration and dispatcher tokens (gateways, head-ends) get their own, much larger allowance.
    trusted_rate_limit_per_minute: float = Field(600_000.0, gt=0.0)
    trusted_rate_limit_burst: int = Field(20_000, ge=1)

    #: Largest accepted request body, bytes; larger bodies get 413.
    max_body_bytes: int = Field(1_000_000, ge=1024)
    #: Most meter messages in one ``POST /ami`` batch.
    ami_batch_max: int = Field(5_000, ge=1)
    #: Group commit: most reports written in one transaction, and the longest a request waits for company.
    intake_batch_max: int = Field(500, ge=1)
    #: Longest an intake request waits in the writer's queue before it is refused (503, not stored).
    intake_request_timeout_s: float = Field(10.0, gt=0.0)
    #: ``Retry-After`` seconds sent with every 503.
    retry_after_s: int = Field(2, ge=0)
    #: On SIGTERM: seconds to let open requests finish before the workers are stopped (whole exit stays < 10 s).
    shutdown_grace_s: float = Field(3.0, ge=0.0)

    #: Hot standby (PostgreSQL): several processes serve the API, the holder of an advisory lock runs the engine.
    standby: bool = False
    #: The advisory lock's key; processes sharing a database and this key elect one leader.
    leader_lock_key: int = 7_270_001
    #: Seconds between a standby's attempts to take the lock (and the leader's checks that it still holds it).
    leader_poll_s: float = Field(1.0, gt=0.0)

    #: Seconds between SSE keep-alive comments (proxies close idle connections).
    sse_keepalive_s: float = Field(15.0, gt=0.0)
    #: Whether to run the live engine thread (tests of pure persistence may turn it off).
    engine_enabled: bool = True

    # ---- the edge: who is calling, and for how long they may hold a connection
    #: Addresses of reverse proxies whose ``X-Forwarded-For`` is believed; nobody else's is (rate limits and
    #: connection caps key on the address, so a forged header would let anyone pose as anyone).
    trusted_proxies: list[str] = Field(default_factory=list)
    #: Every anonymous request, whatever the route, from one address: per minute and burst.
    public_rate_limit_per_minute: float = Field(1200.0, gt=0.0)
    public_rate_limit_burst: int = Field(600, ge=1)
    #: Requests in progress at once from one address (beyond: 429), and open connections (beyond: refused).
    max_requests_per_client: int = Field(256, ge=1)
    max_connections_per_client: int = Field(256, ge=1)
    #: A request's headers must arrive within this many seconds of its first byte, and its body within
    #: ``body_timeout_s`` of its headers; idle keep-alive connections close after ``keep_alive_s``.
    header_timeout_s: float = Field(10.0, gt=0.0)
    body_timeout_s: float = Field(30.0, gt=0.0)
    keep_alive_s: int = Field(5, ge=1)

    # ---- data at the edge
    #: Device and meter messages (and crew positions) older than this are refused: a stale clock, or a replay.
    max_message_age_hours: float = Field(24.0 * 7, gt=0.0)

    # ---- the dispatcher's console
    #: A P1 event should have a crew on site within this many minutes of its start; past it the console raises an
    #: alert (banner and sound) and says how late. 60 is a co-op's usual target; set your own regulator's figure.
    p1_response_minutes: int = Field(60, ge=1, le=24 * 60)

    # ---- sessions
    #: API tokens expire this many days after they are issued (0: never; not recommended).
    token_ttl_days: float = Field(90.0, ge=0.0)

    # ---- the public outage map: who members are dealing with, and how to reach them
    #: The utility's name as members know it (page title, contact line).
    utility_name: str = "Your electric cooperative"
    #: Phone number for outages and emergencies, shown on the public map ("" hides the line).
    utility_phone: str = ""
    #: Where members sign up for outage alerts (text/e-mail), linked from the public map ("" hides the link).
    alerts_url: str = ""
    #: A tile server for the public map's basemap (``{z}/{x}/{y}`` URL); empty: the territory's own OSM layers.
    basemap_tile_url: str = ""
    basemap_tile_attribution: str = ""
