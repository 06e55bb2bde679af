"""How messages leave: email over SMTP, SMS through an HTTP gateway, a webhook, a voice/IVR callback gateway, a log.

Every channel takes an :class:`Outgoing` and returns the provider's message id once the provider has *accepted* the
message, or raises :class:`DeliveryError` saying whether a retry can help (``transient``: a timeout, 4xx SMTP
reply, HTTP 429/5xx) or not (a 5xx SMTP reply, HTTP 4xx; ``opted_out`` when the provider says the recipient
unsubscribed at the carrier, as Twilio's 21610 or Telnyx's 40300 do).

Idempotency: each message carries its outbox idempotency key. HTTP providers get it as the ``Idempotency-Key``
header (a provider that honours it accepts a resubmission after a crash without sending twice); email gets it as
a deterministic ``Message-ID`` (and ``X-OMS-Idempotency-Key``), so mail systems and readers can fold a resubmitted
copy. SMTP itself has no idempotency: a crash between the server's 250 and our commit can still send an email twice.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import re
import select
import smtplib
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from email import quoprimime
from email.header import Header
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import httpx

from api.notify.config import NotifySettings

log = logging.getLogger("oms.notify")
#: Provider error codes meaning "this recipient opted out at the carrier/provider" (Twilio 21610, Telnyx 40300).
OPTED_OUT_CODES = frozenset({"21610", "40300"})


@dataclass(frozen=True, slots=True)
class Outgoing:
    key: str
    channel: str
    to: str
    subject: str
    body: str
    language: str = "en"
    kind: str = ""


class DeliveryError(Exception):
    """The provider did not accept the message. ``transient``: retry later; ``opted_out``: never send again."""

    def __init__(self, message: str, *, transient: bool, opted_out: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
        self.opted_out = opted_out


class Channel(Protocol):
    name: str

    def send(self, msg: Outgoing) -> str:
        """Hand ``msg`` to the provider; return its message id once accepted, else raise DeliveryError."""
        ...

    def close(self) -> None: ...


class VoiceCallback(Protocol):
    """A voice/IVR callback: the provider calls ``to`` and reads ``script`` in ``language``; returns a call id."""

    def place_call(self, to: str, script: str, language: str, key: str) -> str: ...


# ------------------------------------------------------------------------------------------------ email
class _PerThread:
    """One kept connection per sending thread (``_local.conn``), all of them listed for :meth:`close`."""

    def _init_connections(self) -> None:
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()

    def _keep(self, conn: Any) -> Any:
        self._local.conn = conn
        with self._lock:
            self._all.append(conn)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock, contextlib.suppress(ValueError):
                self._all.remove(conn)
            with contextlib.suppress(Exception):  # a broken connection is being discarded anyway
                conn.close()


class SmtpChannel(_PerThread):
    """Email through an SMTP relay (smtplib), one reused connection per sending thread."""

    name = "email"

    def __init__(self, host: str, port: int, sender: str, *, timeout: float = 10.0, starttls: bool = False,
                 user: str | None = None, password: str | None = None) -> None:
        self.host, self.port, self.sender, self.timeout = host, port, sender, timeout
        self.starttls, self.user, self.password = starttls, user, password
        self.domain = sender.rpartition("@")[2] or "oms.local"
        self._init_connections()

    def _connection(self) -> smtplib.SMTP:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            if self.starttls:
                conn.starttls()
            if self.user:
                conn.login(self.user, self.password or "")
            self._keep(conn)
        return conn

    def message(self, msg: Outgoing) -> EmailMessage:
        m = EmailMessage()
        m["From"], m["To"], m["Subject"] = self.sender, msg.to, msg.subject
        m["Date"] = formatdate(localtime=False, usegmt=True)
        m["Message-ID"] = f"<{msg.key.replace(':', '.')}@{self.domain}>"
        m["X-OMS-Idempotency-Key"] = msg.key
        m.set_content(msg.body)
        m["Content-Language"] = msg.language
        return m

    def message_bytes(self, msg: Outgoing) -> bytes:
        """``message(msg).as_bytes()`` without the ``email`` package's header parser and folder (about 1.5 ms of CPU
        per e-mail, most of a worker's): the same headers written directly, the body quoted-printable unless plain
        ASCII. Anything unusual (a line break or a non-ASCII address in a header) goes the long way."""
        to, subject = msg.to, msg.subject or ""
        if not (to.isascii() and self.sender.isascii()) or any(c in v for v in (to, subject, msg.key, msg.language)
                                                                 for c in "\r\n"):
            return self.message(msg).as_bytes()
        if len(subject) > 500:  # needs folding
            return self.message(msg).as_bytes()
        if not subject.isascii():  # RFC 2047 encoded words, folded
            subject = Header(subject, "utf-8", header_name="Subject").encode()
        body = msg.body.replace("\r\n", "\n")
        body = body if body.endswith("\n") else body + "\n"
        if body.isascii() and max(map(len, body.splitlines()), default=0) <= 78:
            cte = "7bit"
        else:
            cte, body = "quoted-printable", quoprimime.body_encode(body.encode("utf-8").decode("latin-1"))
        head = (f"From: {self.sender}\nTo: {to}\nSubject: {subject}\nDate: {formatdate(localtime=False, usegmt=True)}\n"
                f"Message-ID: <{msg.key.replace(':', '.')}@{self.domain}>\nX-OMS-Idempotency-Key: {msg.key}\n"
                f"Content-Type: text/plain; charset=\"utf-8\"\nContent-Transfer-Encoding: {cte}\nMIME-Version: 1.0\n"
                f"Content-Language: {msg.language}\n\n")
        return (head + body).encode("ascii")  # smtplib turns the line ends into CRLF, as for as_bytes()

    def send(self, msg: Outgoing) -> str:
        return self.finish(self.stage(msg))

    def stage(self, msg: Outgoing) -> smtplib.SMTP:
        """The first phase of a send, on this thread's connection: MAIL, RCPT, DATA and the whole text but its final
        line. The server has accepted nothing yet: a connection lost now aborts the mail transaction (RFC 5321
        4.1.1.4: the mail is delivered only after the ``<CRLF>.<CRLF>``). :meth:`finish` on the same thread sends that
        line; the server's 250 to it is the acceptance. So many e-mails can be on their way at once while the worker
        lets only one at a time be accepted-but-not-yet-recorded."""
        data = self.message_bytes(msg)
        with self._errors():
            conn = self._connection()
            conn.ehlo_or_helo_if_needed()
            code, resp = conn.mail(self.sender)
            if code != 250:
                conn.rset()
                raise smtplib.SMTPResponseException(code, resp)
            code, resp = conn.rcpt(msg.to)
            if code not in (250, 251):
                conn.rset()
                raise smtplib.SMTPResponseException(code, resp)
            conn.putcmd("data")
            code, resp = conn.getreply()
            if code != 354:
                raise smtplib.SMTPDataError(code, resp)
            text = re.sub(rb"(?m)^\.", b"..", data)  # as smtplib.SMTP.data quotes it
            conn.send(text if text.endswith(b"\r\n") else text + b"\r\n")
        return conn

    def finish(self, conn: smtplib.SMTP) -> str:
        """The second phase: the final line of a staged text; returns the server's acceptance."""
        with self._errors():
            conn.send(b".\r\n")
            code, resp = conn.getreply()
            if code != 250:
                raise smtplib.SMTPResponseException(code, resp)
        return resp.decode(errors="replace") if isinstance(resp, bytes) else str(resp)

    @contextlib.contextmanager
    def _errors(self):
        """SMTP and connection failures as :class:`DeliveryError` (4xx and lost connections transient)."""
        try:
            yield
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
            if exc.smtp_code == 421:
                self._drop()
            raise DeliveryError(f"SMTP {exc.smtp_code} {text}", transient=400 <= exc.smtp_code < 500) from None
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            self._drop()
            raise DeliveryError(f"SMTP {self.host}:{self.port}: {type(exc).__name__}: {exc}", transient=True) from None

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                with contextlib.suppress(Exception):  # closing: nothing left to do about it
                    conn.quit()
            self._all.clear()


# ------------------------------------------------------------------------------------------------ HTTP
def _dig(data: Any, path: str) -> Any:
    for part in path.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def _http_error(name: str, response: httpx.Response | _Answer) -> DeliveryError:
    text = response.text[:300]
    code = ""
    try:
        body = response.json()
        code = str(body.get("code", "") if isinstance(body, dict) else "")
    except ValueError:
        pass
    transient = response.status_code == 429 or response.status_code >= 500
    return DeliveryError(f"{name} HTTP {response.status_code}: {text}", transient=transient,
                         opted_out=code in OPTED_OUT_CODES)


class _Answer:
    """What :func:`_http_error` reads of an answer (``httpx.Response`` has the same)."""

    def __init__(self, status_code: int, content: bytes) -> None:
        self.status_code, self.content = status_code, content

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class HttpSmsChannel(_PerThread):
    """SMS through a generic HTTP gateway shaped like common SMS APIs: a form post (Twilio-style ``To``/``From``/
    ``Body``) or a JSON body, basic or bearer auth, the provider's message id read from its JSON answer.

    One kept-alive ``http.client`` connection per sending thread: httpx cost about 0.7 ms of CPU per request (its
    pool bookkeeping and layers), most of what an SMS costs the worker. As httpx does, a kept-alive connection the
    gateway has closed meanwhile (its socket readable while idle) is replaced before the request, never after."""

    name = "sms"

    def __init__(self, url: str, *, sender: str, fmt: str = "form", to_field: str = "To", from_field: str = "From",
                 body_field: str = "Body", id_field: str = "sid", user: str | None = None,
                 password: str | None = None, bearer: str | None = None, timeout: float = 10.0) -> None:
        if fmt not in ("form", "json"):
            raise ValueError(f"sms_format must be 'form' or 'json', got {fmt!r}")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"sms_url must be an http(s) URL, got {url!r}")
        self.url, self.sender, self.fmt, self.timeout = url, sender, fmt, timeout
        self.fields = (to_field, from_field, body_field)
        self.id_field = id_field
        self._target = (parts.scheme, parts.hostname, parts.port, (parts.path or "/") +
                        (f"?{parts.query}" if parts.query else ""))
        self._headers = {"Content-Type": "application/x-www-form-urlencoded" if fmt == "form" else "application/json",
                         "Accept": "application/json", "User-Agent": "oms-notify"}
        if bearer:
            self._headers["Authorization"] = f"Bearer {bearer}"
        elif user:
            self._headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password or ''}".encode()).decode()
        self._init_connections()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and conn.sock is not None:
            ready = select.select([conn.sock], [], [], 0)[0]
            if ready:  # closed by the gateway while idle (or stray bytes): not reusable
                self._drop()
                conn = None
        if conn is None:
            scheme, host, port, _ = self._target
            conn = (http.client.HTTPSConnection(host, port, timeout=self.timeout, context=ssl.create_default_context())
                    if scheme == "https" else http.client.HTTPConnection(host, port, timeout=self.timeout))
            self._keep(conn)
        return conn

    def send(self, msg: Outgoing) -> str:
        to_f, from_f, body_f = self.fields
        payload = {to_f: msg.to, from_f: self.sender, body_f: msg.body}
        body = urlencode(payload).encode() if self.fmt == "form" else json.dumps(payload).encode()
        stage = "Connect"
        try:
            conn = self._connection()
            if conn.sock is None:
                conn.connect()
            stage = "Write"
            conn.request("POST", self._target[3], body, {**self._headers, "Idempotency-Key": msg.key})
            stage = "Read"
            response = conn.getresponse()
            r = _Answer(response.status, response.read())
            if response.will_close:
                self._drop()
        except TimeoutError as exc:
            self._drop()
            raise DeliveryError(f"SMS gateway: {stage}Timeout: {exc}", transient=True) from None
        except (OSError, http.client.HTTPException) as exc:
            self._drop()
            raise DeliveryError(f"SMS gateway: {type(exc).__name__}: {exc}", transient=True) from None
        if r.status_code >= 300:
            raise _http_error("SMS gateway", r)
        try:
            pid = _dig(r.json(), self.id_field)
        except ValueError:
            pid = None
        if not pid:  # accepted but unreadable: keep the raw answer rather than pretend to know the id
            return f"?{r.text[:100]}"
        return str(pid)

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()


def sign(secret: str, body: bytes) -> str:
    """HMAC-SHA256 of ``body`` keyed with ``secret``, hex (``X-OMS-Signature`` on webhooks, both directions)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _resolve(host: str, port: int) -> list[str]:
    return sorted({info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


def webhook_target(url: str, allow_hosts: list[str] | tuple = (), allow_networks: list[str] | tuple = (), *,
                   resolve=_resolve) -> tuple[str | None, str | None]:
    """``(address, None)`` to post ``url`` to — the host resolved, *every* address checked — or ``(None, why)``.

    Refused: schemes other than http(s), credentials in the URL, hosts off ``allow_hosts`` (when given), and any
    address that is not globally routable (private, loopback, link-local such as cloud metadata, multicast,
    reserved) unless it lies in ``allow_networks``. The caller connects to the returned address, so a DNS answer
    that changes between check and post (rebinding) cannot move the request inside."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None, "not a URL"
    if parts.scheme not in ("http", "https") or not host:
        return None, "only http(s) URLs with a host"
    if parts.username or parts.password:
        return None, "credentials in the URL"
    if allow_hosts and not any(host == h or (h.startswith("*.") and host.endswith(h[1:])) for h in allow_hosts):
        return None, f"host {host} is not on the webhook allow-list"
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError):
        return None, f"host {host} does not resolve"
    if not addresses:
        return None, f"host {host} does not resolve"
    allowed = [ipaddress.ip_network(n, strict=False) for n in allow_networks]
    for a in addresses:
        ip = ipaddress.ip_address(a.split("%", 1)[0])
        ip = getattr(ip, "ipv4_mapped", None) or ip  # ::ffff:127.0.0.1 is loopback too
        if not ip.is_global and not any(ip in n for n in allowed):
            return None, f"{host} resolves to a non-public address ({ip})"
    return addresses[0], None


class WebhookChannel:
    """A JSON POST per message to a configured URL (or the contact's own URL, checked by :func:`webhook_target`),
    signed when a secret is set. Failures are recorded as a status line only: a reply body is never kept, so a
    webhook cannot be used to read an internal service's answers through ``GET /notify/dead``."""

    name = "webhook"

    def __init__(self, url: str | None, *, secret: str | None = None, timeout: float = 10.0,
                 allow_hosts: list[str] | tuple = (), allow_networks: list[str] | tuple = ()) -> None:
        self.url, self.secret = url, secret
        self.allow_hosts, self.allow_networks = tuple(allow_hosts), tuple(allow_networks)
        self.client = httpx.Client(timeout=timeout, follow_redirects=False)

    def send(self, msg: Outgoing) -> str:
        own = msg.to.startswith(("http://", "https://"))
        url = msg.to if own else self.url
        if not url:
            raise DeliveryError("webhook: no URL configured", transient=False)
        body = json.dumps({"key": msg.key, "kind": msg.kind, "to": msg.to, "subject": msg.subject,
                           "body": msg.body, "language": msg.language}).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": msg.key}
        if self.secret:
            headers["X-OMS-Signature"] = sign(self.secret, body)
        extensions = {}
        if own:  # a contact's URL: checked, then posted to the checked address (Host and TLS name kept)
            address, why = webhook_target(url, self.allow_hosts, self.allow_networks)
            if address is None:
                raise DeliveryError(f"webhook target refused: {why}", transient=False)
            parts = urlsplit(url)
            headers["Host"] = parts.netloc
            extensions = {"sni_hostname": parts.hostname}
            ip_host = f"[{address}]" if ":" in address else address
            url = parts._replace(netloc=f"{ip_host}:{parts.port}" if parts.port else ip_host).geturl()
        try:
            r = self.client.post(url, content=body, headers=headers, extensions=extensions)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook: {type(exc).__name__}", transient=True) from None
        if r.status_code >= 300:
            transient = r.status_code == 429 or r.status_code >= 500
            raise DeliveryError(f"webhook HTTP {r.status_code}", transient=transient)
        return r.headers.get("X-Request-Id", "")[:100] or f"webhook:{msg.key}"

    def close(self) -> None:
        self.client.close()


class HttpVoiceCallback:
    """A voice/IVR provider reached over HTTP: POST ``{to, say, language}``; the answer's ``id`` is the call id."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url
        self.client = httpx.Client(timeout=timeout)

    def place_call(self, to: str, script: str, language: str, key: str) -> str:
        try:
            r = self.client.post(self.url, json={"to": to, "say": script, "language": language},
                                 headers={"Idempotency-Key": key})
        except httpx.HTTPError as exc:
            raise DeliveryError(f"voice gateway: {type(exc).__name__}: {exc}", transient=True) from None
        if r.status_code >= 300:
            raise _http_error("voice gateway", r)
        return str(_dig(r.json(), "id") or f"call:{key}")


class VoiceChannel:
    """The voice channel: the SMS text read aloud through a :class:`VoiceCallback`."""

    name = "voice"

    def __init__(self, callback: VoiceCallback) -> None:
        self.callback = callback

    def send(self, msg: Outgoing) -> str:
        return self.callback.place_call(msg.to, msg.body, msg.language, msg.key)

    def close(self) -> None:
        client = getattr(self.callback, "client", None)
        if client is not None:
            client.close()


@dataclass
class LogChannel:
    """The demo channel: the message goes to the log (and to ``sent``, which the demo and tests read)."""

    name: str = "log"
    keep: int = 1000
    sent: list[Outgoing] = field(default_factory=list)

    def send(self, msg: Outgoing) -> str:
        log.info("notify %s to %s: %s", msg.kind, msg.to or "(no contact)", msg.body.replace("\n", " ")[:200])
        if len(self.sent) < self.keep:
            self.sent.append(msg)
        return f"log:{time.time_ns()}"

    def close(self) -> None:
        pass


def from_settings(s: NotifySettings) -> dict[str, Channel]:
    """The channels the settings configure, by name. ``log`` is always there."""
    channels: dict[str, Channel] = {"log": LogChannel()}
    if s.smtp_host:
        channels["email"] = SmtpChannel(s.smtp_host, s.smtp_port, s.smtp_from, timeout=s.smtp_timeout_s,
                                        starttls=s.smtp_starttls, user=s.smtp_user, password=s.smtp_password)
    if s.sms_url:
        channels["sms"] = HttpSmsChannel(s.sms_url, sender=s.sms_from, fmt=s.sms_format, to_field=s.sms_to_field,
                                         from_field=s.sms_from_field, body_field=s.sms_body_field,
                                         id_field=s.sms_id_field, user=s.sms_user, password=s.sms_password,
                                         bearer=s.sms_bearer_token, timeout=s.sms_timeout_s)
    if s.webhook_url:
        channels["webhook"] = WebhookChannel(s.webhook_url, secret=s.webhook_secret,
                                             allow_hosts=s.webhook_allow_hosts,
                                             allow_networks=s.webhook_allow_networks)
    if s.voice_url:
        channels["voice"] = VoiceChannel(HttpVoiceCallback(s.voice_url))
    return channels
