"""What each message says, per kind, language (English, Spanish) and channel — in plain words.

SMS is short (one or two segments: it states the fact, the time and what to do); email has a subject and a fuller
body; voice is the SMS text read aloud without links; webhook and log carry the email body. Times are shown in the
utility's local time zone, ranges as "between 3:30 PM and 5:00 PM".

The kinds follow what utilities send (see the notifications research): ``acknowledgment`` of a report,
``outage_notice`` (proactive, to everyone downstream of a predicted or confirmed outage), ``crew_dispatched`` (with
the ETA when there is one), ``etr_update``, ``restoration`` (with "reply OUT if you are still out") and the SMS
keyword answers ``stop_confirm``, ``start_confirm``, ``help`` and ``still_out_ack``. ``dispatcher_note`` carries a
dispatcher's own short words about one outage (``Context.note``), framed in the reader's language.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

KINDS = ("acknowledgment", "outage_notice", "crew_dispatched", "etr_update", "restoration", "stop_confirm",
         "start_confirm", "help", "still_out_ack", "confirm_request", "dispatcher_note")
LANGUAGES = ("en", "es")
#: Kinds never held back by quiet hours: people are waiting for these (or asked a question).
URGENT_KINDS = frozenset({"acknowledgment", "restoration", "stop_confirm", "start_confirm", "help", "still_out_ack",
                          "confirm_request"})
GSM7 = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
           "abcdefghijklmnopqrstuvwxyzäöñüà")


@dataclass(frozen=True, slots=True)
class Context:
    """Facts a message may state. Unknown facts are ``None`` and the text says so plainly."""

    utility: str
    help_phone: str
    reference: str | None = None
    status_url: str | None = None
    customers: int | None = None
    area: str | None = None
    etr_earliest: datetime | None = None
    etr_latest: datetime | None = None
    #: the ETR's stated probability (0.8: 80% of similar outages were restored within the range); None: not stated
    etr_probability: float | None = None
    crew_eta: datetime | None = None
    cause: str | None = None
    #: ``confirm_request``: the link that confirms an e-mail address (``status_url`` is not used then).
    confirm_url: str | None = None
    #: ``dispatcher_note``: what the dispatcher wrote, as written (one language: the frame around it is translated).
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    body: str


def sms_segments(text: str) -> int:
    """How many SMS segments ``text`` takes (GSM-7: 160/153 characters; otherwise UCS-2: 70/67)."""
    if set(text) <= GSM7:
        single, multi = 160, 153
    else:
        single, multi = 70, 67
    n = len(text)
    return 1 if n <= single else -(-n // multi)


def _clock(t: datetime, tz: ZoneInfo, lang: str) -> str:
    local = t.astimezone(tz)
    if lang == "es":
        return local.strftime("%H:%M")
    return local.strftime("%I:%M %p").lstrip("0")


def _day(t: datetime, now: datetime, tz: ZoneInfo, lang: str) -> str:
    """'' for today, else a short weekday/date, so "5:00 PM" is never ambiguous across midnight."""
    local, today = t.astimezone(tz).date(), now.astimezone(tz).date()
    if local == today:
        return ""
    days = (local - today).days
    if days == 1:
        return " mañana" if lang == "es" else " tomorrow"
    if lang == "es":
        return " el " + local.strftime("%d/%m")
    return " on " + local.strftime("%a %b %d").replace(" 0", " ")


def _when(c: Context, now: datetime, tz: ZoneInfo, lang: str) -> str | None:
    """The ETR as words with its stated probability: 'by 5:00 PM (80% likely)', 'between 3:30 PM and 5:00 PM
    tomorrow (80% likely)' -- the range and number the maps and the console show."""
    lo, hi = c.etr_earliest, c.etr_latest
    if lo is None and hi is None:
        return None
    hi = hi or lo
    day = _day(hi, now, tz, lang)
    p = c.etr_probability
    odds = "" if p is None else (f" (probabilidad {p:.0%})" if lang == "es" else f" ({p:.0%} likely)")
    if lo is None or abs((hi - lo).total_seconds()) < 15 * 60:
        return (f"hacia las {_clock(hi, tz, lang)}{day}{odds}" if lang == "es"
                else f"by {_clock(hi, tz, lang)}{day}{odds}")
    if lang == "es":
        return f"entre las {_clock(lo, tz, lang)} y las {_clock(hi, tz, lang)}{day}{odds}"
    return f"between {_clock(lo, tz, lang)} and {_clock(hi, tz, lang)}{day}{odds}"


def _scope(c: Context, lang: str) -> str:
    n, area = c.customers, c.area
    if lang == "es":
        what = f"un corte que afecta a unos {n} clientes" if n and n > 1 else "un corte"
        return what + (f" cerca de {area}" if area else " en su zona")
    what = f"an outage affecting about {n} customers" if n and n > 1 else "an outage"
    return what + (f" near {area}" if area else " in your area")


def render(kind: str, lang: str, channel: str, c: Context, *, now: datetime, tz: ZoneInfo | str = "UTC") -> Rendered:
    """The message of ``kind`` in ``lang`` for ``channel``. Raises ValueError naming an unknown kind or language."""
    if kind not in KINDS:
        raise ValueError(f"message kind {kind!r} unknown; expected one of {', '.join(KINDS)}")
    if lang not in LANGUAGES:
        raise ValueError(f"language {lang!r} not available; expected one of {', '.join(LANGUAGES)}")
    tz = ZoneInfo(tz) if isinstance(tz, str) else tz
    short, subject, long = _TEXTS[lang](kind, c, now, tz)
    if channel in ("sms", "voice"):
        return Rendered(subject, short)
    return Rendered(subject, long)


def _en(kind: str, c: Context, now: datetime, tz: ZoneInfo) -> tuple[str, str, str]:
    u, ref, when = c.utility, c.reference, _when(c, now, tz, "en")
    follow = f" Follow it: {c.status_url}" if c.status_url else ""
    sign = f"\n\n{u}. Questions: {c.help_phone}. Reply STOP to stop texts."
    if kind == "acknowledgment":
        known = (f"We see {_scope(c, 'en')}; crews are being assigned." if c.customers
                 else "We are working out how far the outage reaches.")
        eta = f" Estimated restoration {when}." if when else ""
        sms = f"{u}: we got your outage report {ref}. {known}{eta}{follow}"
        body = (f"Thank you, we received your outage report (reference {ref}).\n\n{known}{eta}\n\n"
                f"We will tell you when a crew is on the way and when power is back."
                + (f"\n\nFollow your report: {c.status_url}" if c.status_url else "") + sign)
        return sms, f"We received your outage report {ref}", body
    if kind == "outage_notice":
        eta = f" Estimated restoration {when}." if when else " We will send an estimate when we have one."
        sms = f"{u}: we know about {_scope(c, 'en')}. No need to report it.{eta}"
        body = (f"We know about {_scope(c, 'en')}, which includes your address. You do not need to report it."
                f"{eta}" + (f" Cause: {c.cause}." if c.cause else "") + sign)
        return sms, "Power outage in your area", body
    if kind == "crew_dispatched":
        arrive = f" It should arrive by {_clock(c.crew_eta, tz, 'en')}." if c.crew_eta else ""
        eta = f" Estimated restoration {when}." if when else ""
        sms = f"{u}: a crew is on the way to the outage{' ' + ref if ref else ''}.{arrive}{eta}"
        return sms, "A crew is on the way", f"A crew is on the way to the outage affecting you.{arrive}{eta}" + sign
    if kind == "etr_update":
        eta = f"now {when}" if when else "not known yet"
        sms = f"{u}: new estimate for your outage: power back {eta}. Sorry for the wait."
        body = (f"We have a new estimate for the outage affecting you: power should be back {eta}."
                + (f" Cause: {c.cause}." if c.cause else "") + sign)
        return sms, "New restoration estimate", body
    if kind == "restoration":
        sms = f"{u}: power is back in your area. Still out? Reply OUT and we will send a crew."
        body = ("Power has been restored in your area. If your power is still out, reply OUT to our texts or "
                f"call {c.help_phone}: the problem may be at your house or on your street, and we will send a crew."
                + sign)
        return sms, "Power is back", body
    if kind == "confirm_request":
        sms = (f"{u}: this number was given for updates on outage report {ref}. Reply YES to get them. "
               "Not you? Ignore this text: you will get nothing more.")
        body = (f"This address was given for updates on outage report {ref}. To get them, open {c.confirm_url}\n\n"
                f"Not you? Ignore this e-mail: you will get nothing more.\n\n{u}. Questions: {c.help_phone}.")
        return sms, "Confirm your address for outage updates", body
    if kind == "dispatcher_note":
        about = f" {ref}" if ref else ""
        sms = f"{u}, about the outage{about}: {c.note or ''}"
        body = (f"A note from our dispatchers about the outage affecting you{about}:\n\n{c.note or ''}"
                + (f"\n\nFollow it: {c.status_url}" if c.status_url else "") + sign)
        return sms, "About your outage: a note from our dispatchers", body
    if kind == "stop_confirm":
        text = f"{u}: you will get no more outage texts. Reply START to turn them back on."
        return text, "Outage texts stopped", text
    if kind == "start_confirm":
        text = f"{u}: outage texts are on again. Reply STOP to stop, HELP for help. Msg & data rates may apply."
        return text, "Outage texts on", text
    if kind == "help":
        text = (f"{u} outage alerts: a few texts per outage. Reply OUT to report an outage, STOP to stop. "
                f"Help: {c.help_phone}. Msg & data rates may apply.")
        return text, "Outage alerts help", text
    text = (f"{u}: thanks, we logged that your power is still out{' (' + ref + ')' if ref else ''}. "
            "A crew will check it.")
    return text, "Still out: we are on it", text


def _es(kind: str, c: Context, now: datetime, tz: ZoneInfo) -> tuple[str, str, str]:
    u, ref, when = c.utility, c.reference, _when(c, now, tz, "es")
    follow = f" Siga el aviso: {c.status_url}" if c.status_url else ""
    sign = f"\n\n{u}. Preguntas: {c.help_phone}. Responda STOP para no recibir textos."
    if kind == "acknowledgment":
        known = (f"Vemos {_scope(c, 'es')}; estamos asignando cuadrillas." if c.customers
                 else "Estamos viendo hasta dónde llega el corte.")
        eta = f" Luz estimada {when}." if when else ""
        sms = f"{u}: recibimos su aviso de corte {ref}. {known}{eta}{follow}"
        body = (f"Gracias, recibimos su aviso de corte de luz (referencia {ref}).\n\n{known}{eta}\n\n"
                "Le avisaremos cuando una cuadrilla vaya en camino y cuando vuelva la luz."
                + (f"\n\nSiga su aviso: {c.status_url}" if c.status_url else "") + sign)
        return sms, f"Recibimos su aviso de corte {ref}", body
    if kind == "outage_notice":
        eta = f" Luz estimada {when}." if when else " Le enviaremos una hora estimada cuando la tengamos."
        sms = f"{u}: sabemos de {_scope(c, 'es')}. No hace falta avisar.{eta}"
        body = (f"Sabemos de {_scope(c, 'es')}, que incluye su domicilio. No hace falta que nos avise.{eta}"
                + (f" Causa: {c.cause}." if c.cause else "") + sign)
        return sms, "Corte de luz en su zona", body
    if kind == "crew_dispatched":
        arrive = f" Llegará hacia las {_clock(c.crew_eta, tz, 'es')}." if c.crew_eta else ""
        eta = f" Luz estimada {when}." if when else ""
        sms = f"{u}: una cuadrilla va en camino al corte{' ' + ref if ref else ''}.{arrive}{eta}"
        return sms, "Una cuadrilla va en camino", f"Una cuadrilla va en camino al corte que le afecta.{arrive}{eta}" + sign
    if kind == "etr_update":
        eta = f"ahora {when}" if when else "aún sin hora"
        sms = f"{u}: nueva hora estimada para su corte: luz {eta}. Disculpe la espera."
        body = (f"Tenemos una nueva hora estimada para el corte que le afecta: la luz debería volver {eta}."
                + (f" Causa: {c.cause}." if c.cause else "") + sign)
        return sms, "Nueva hora estimada", body
    if kind == "restoration":
        sms = f"{u}: volvió la luz en su zona. ¿Sigue sin luz? Responda OUT y enviaremos una cuadrilla."
        body = ("La luz ha vuelto en su zona. Si usted sigue sin luz, responda OUT a nuestros textos o llame al "
                f"{c.help_phone}: el problema puede estar en su casa o en su calle, y enviaremos una cuadrilla."
                + sign)
        return sms, "Volvió la luz", body
    if kind == "confirm_request":
        sms = (f"{u}: dieron este número para recibir novedades del aviso de corte {ref}. Responda YES para "
               "recibirlas. ¿No fue usted? Ignore este texto: no recibirá nada más.")
        body = (f"Dieron esta dirección para recibir novedades del aviso de corte {ref}. Para recibirlas, abra "
                f"{c.confirm_url}\n\n¿No fue usted? Ignore este correo: no recibirá nada más.\n\n"
                f"{u}. Preguntas: {c.help_phone}.")
        return sms, "Confirme su dirección para recibir novedades", body
    if kind == "dispatcher_note":
        about = f" {ref}" if ref else ""
        sms = f"{u}, sobre el corte{about}: {c.note or ''}"
        body = (f"Una nota de nuestros despachadores sobre el corte que le afecta{about}:\n\n{c.note or ''}"
                + (f"\n\nSiga el aviso: {c.status_url}" if c.status_url else "") + sign)
        return sms, "Sobre su corte: una nota de nuestros despachadores", body
    if kind == "stop_confirm":
        text = f"{u}: no recibirá más textos de cortes. Responda START para volver a recibirlos."
        return text, "Textos de cortes desactivados", text
    if kind == "start_confirm":
        text = (f"{u}: los textos de cortes están activos. Responda STOP para dejarlos, HELP para ayuda. "
                "Pueden aplicarse tarifas.")
        return text, "Textos de cortes activos", text
    if kind == "help":
        text = (f"Alertas de cortes de {u}: pocos textos por corte. Responda OUT para avisar de un corte, STOP "
                f"para dejarlos. Ayuda: {c.help_phone}. Pueden aplicarse tarifas.")
        return text, "Ayuda de alertas de cortes", text
    text = (f"{u}: gracias, anotamos que sigue sin luz{' (' + ref + ')' if ref else ''}. "
            "Una cuadrilla lo revisará.")
    return text, "Sigue sin luz: lo revisamos", text


_TEXTS = {"en": _en, "es": _es}
