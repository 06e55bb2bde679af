from datetime import UTC, datetime, timedelta

import pytest

from api.notify.templates import KINDS, LANGUAGES, Context, render, sms_segments

NOW = datetime(2026, 5, 1, 19, 0, tzinfo=UTC)  # 2 PM in Chicago
CTX = Context("Test Co-op", "1-800-555-0100", reference="R-7KQ2-M9XD-P4", status_url="https://o.example/r/x",
              customers=140, area="Elm St", etr_earliest=NOW + timedelta(hours=1),
              etr_latest=NOW + timedelta(hours=2), crew_eta=NOW + timedelta(minutes=40))


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_renders_in_both_languages_short_for_sms(kind, lang):
    sms = render(kind, lang, "sms", CTX, now=NOW, tz="America/Chicago")
    email = render(kind, lang, "email", CTX, now=NOW, tz="America/Chicago")
    assert sms.body and email.subject and email.body
    assert sms_segments(sms.body) <= 3, sms.body
    assert "{" not in sms.body + email.body  # no unfilled placeholder


def test_acknowledgment_states_what_we_know_in_local_time():
    en = render("acknowledgment", "en", "sms", CTX, now=NOW, tz="America/Chicago").body
    assert "R-7KQ2-M9XD-P4" in en and "about 140 customers near Elm St" in en
    assert "between 3:00 PM and 4:00 PM" in en  # 20:00-21:00 UTC is 3-4 PM CDT
    es = render("acknowledgment", "es", "sms", CTX, now=NOW, tz="America/Chicago").body
    assert "unos 140 clientes cerca de Elm St" in es and "entre las 15:00 y las 16:00" in es


def test_unknown_facts_are_said_plainly():
    bare = Context("Test Co-op", "1-800", reference="R-1")
    en = render("acknowledgment", "en", "sms", bare, now=NOW).body
    assert "working out how far the outage reaches" in en and "None" not in en
    assert "not known yet" in render("etr_update", "en", "sms", bare, now=NOW).body


def test_restoration_offers_the_still_out_reply_and_etr_tomorrow_is_dated():
    assert "Reply OUT" in render("restoration", "en", "sms", CTX, now=NOW).body
    assert "Responda OUT" in render("restoration", "es", "sms", CTX, now=NOW).body
    late = Context("C", "1", etr_latest=NOW + timedelta(hours=20))
    assert "tomorrow" in render("etr_update", "en", "sms", late, now=NOW, tz="America/Chicago").body
    assert "mañana" in render("etr_update", "es", "sms", late, now=NOW, tz="America/Chicago").body


def test_bad_kind_or_language_is_named():
    with pytest.raises(ValueError, match="'bogus'"):
        render("bogus", "en", "sms", CTX, now=NOW)
    with pytest.raises(ValueError, match="'fr'"):
        render("acknowledgment", "fr", "sms", CTX, now=NOW)


def test_sms_segments_counts_gsm_and_unicode():
    assert sms_segments("a" * 160) == 1 and sms_segments("a" * 161) == 2
    assert sms_segments("¿" + "á" * 69) == 1 and sms_segments("á" * 71) == 2
