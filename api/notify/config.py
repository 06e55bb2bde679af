"""Notification settings, from the environment (prefix ``OMS_NOTIFY_``), like :mod:`api.settings`.

Providers are configured here, not in code: an SMTP relay, an HTTP SMS gateway shaped like common SMS APIs
(Twilio-style form post or a JSON body; which fields carry to/from/body and where the provider's message id is in
the answer), a webhook and a voice/IVR callback URL. A channel without configuration is simply not available;
messages for it fall back to the customer's next channel.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class NotifySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OMS_NOTIFY_", extra="ignore")

    utility_name: str = "Your electric co-op"
    help_phone: str = "1-800-555-0100"
    #: Public report-status page; ``{reference}`` is filled in.
    status_url: str = "https://outages.example.org/r/{reference}"
    #: Where an e-mail confirmation link points (``{code}`` is filled in; it posts the code to /notify/confirm).
    confirm_url: str = "https://outages.example.org/confirm?code={code}"
    #: An address given anonymously gets at most one confirmation request per this many seconds.
    confirm_interval_s: float = Field(86_400.0, gt=0)
    #: The utility's local time zone: times in messages are local (inside, everything is UTC).
    timezone: str = "UTC"
    #: Country code given to national phone numbers at enrollment (stored in E.164).
    default_country_code: str = Field("1", pattern=r"^[1-9][0-9]{0,2}$")

    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "outages@example.org"
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_timeout_s: float = Field(10.0, gt=0)

    sms_url: str | None = None
    sms_format: Literal["form", "json"] = "form"
    sms_from: str = "+15550100000"
    sms_to_field: str = "To"
    sms_from_field: str = "From"
    sms_body_field: str = "Body"
    #: Dotted path to the provider's message id in its JSON answer (``sid`` for Twilio, ``data.id`` for others).
    sms_id_field: str = "sid"
    sms_user: str | None = None
    sms_password: str | None = None
    sms_bearer_token: str | None = None
    sms_timeout_s: float = Field(10.0, gt=0)
    #: Shared secret the gateway signs inbound webhooks with (HMAC-SHA256 of the body, hex, ``X-OMS-Signature``).
    inbound_secret: str | None = None

    webhook_url: str | None = None
    webhook_secret: str | None = None
    #: Hosts a contact's own webhook may point at (``hooks.example.com`` or ``*.example.com``); empty: any public
    #: host. The configured ``webhook_url`` is the utility's own and is not checked.
    webhook_allow_hosts: list[str] = []
    #: Networks (CIDR) where contact webhooks may land although private, loopback or link-local (e.g. a test's
    #: ``127.0.0.0/8``). Empty: such targets are refused, so a contact cannot aim us at internal services.
    webhook_allow_networks: list[str] = []
    voice_url: str | None = None

    #: Messages per second per channel per worker process (match the provider's MPS divided by processes).
    rate_sms: float = Field(100.0, gt=0)
    rate_email: float = Field(200.0, gt=0)
    rate_voice: float = Field(5.0, gt=0)
    rate_webhook: float = Field(200.0, gt=0)
    rate_log: float = Field(100_000.0, gt=0)

    batch_size: int = Field(200, ge=1)
    #: Concurrent sends per worker process on the channels in ``idempotent_channels`` (I/O bound: HTTP round trips).
    threads: int = Field(16, ge=1)
    #: Channels whose provider honours the ``Idempotency-Key`` header: a resubmitted key is answered with the first
    #: message's id and not delivered again (``sms``, ``webhook``, ``voice``; never ``email``: SMTP has no keys).
    #: They send on ``threads`` threads. Every other channel has one message at a time per worker process accepted
    #: but not yet recorded (SMTP stages the rest of each e-mail on ``threads`` threads of its own), so a killed
    #: worker re-sends at most one message that a person can receive twice. Default: none (nothing is assumed).
    idempotent_channels: list[str] = []
    #: How many claimed messages a worker process queues for the channels without keys (claimed rows wait for
    #: this process, so a small queue; a claim tops it up as it empties).
    serial_queue: int = Field(64, ge=1)
    poll_interval_s: float = Field(0.2, gt=0)
    #: How long the recorder waits for more sending threads' results before committing a group (it commits at once
    #: when every busy thread is waiting for it): fewer, bigger transactions for a few ms of acknowledgment latency.
    record_gather_s: float = Field(0.005, ge=0)
    #: On SQLite, a channel without keys writes each acceptance to a per-process journal file (one ``write``) under
    #: its one-at-a-time lock and commits it with others in one transaction (:mod:`api.notify.journal`): SQLite has
    #: one writer for all processes, and a transaction per e-mail bounded e-mail throughput. Off: one per e-mail.
    accept_journal: bool = True
    #: A claim not renewed for this long belongs to a dead worker: the row goes back to pending (same idempotency
    #: key). Live workers renew their claims every ``lease_s / 3``, so this bounds only how long a dead one delays.
    lease_s: float = Field(15.0, gt=0)
    max_attempts: int = Field(10, ge=1)
    backoff_base_s: float = Field(2.0, gt=0)
    backoff_max_s: float = Field(900.0, gt=0)

    #: Acknowledgment SLA (the utility's promise) and when a pending acknowledgment counts as at risk.
    ack_sla_s: float = Field(900.0, gt=0)
    ack_at_risk_s: float = Field(300.0, gt=0)

    #: How often the planner looks for changed events.
    plan_interval_s: float = Field(1.0, gt=0)

    @field_validator("idempotent_channels")
    @classmethod
    def _known_idempotent(cls, value: list[str]) -> list[str]:
        allowed = {"sms", "webhook", "voice"}
        bad = [v for v in value if v not in allowed]
        if bad:
            raise ValueError(f"{', '.join(bad)}: not a channel whose provider can honour an idempotency key "
                             f"(allowed: {', '.join(sorted(allowed))}; SMTP has no keys)")
        return value
