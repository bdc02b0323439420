"""The rules of events and webhooks that need no database: types, cursors,
signatures (checked with the `standardwebhooks` package, as a receiver
would), URLs and addresses, backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from ledger.engine import errors
from ledger.engine import events as ev
from ledger.engine.journal_model import JournalRecord
from ledger.engine.webhook_model import (
    backoff_seconds,
    check_addresses,
    check_url,
    new_secret,
    sign,
)

BODY = b'{"id":"evt_1","type":"transaction.posted"}'


def record(**fields) -> JournalRecord:
    base = {
        "id": "6f1c2d4e-0000-4000-8000-000000000001",
        "client_id": "c",
        "idempotency_key": "k",
        "fingerprint": "f",
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "description": None,
        "metadata": {},
        "pending": False,
        "timeout_seconds": None,
        "reverses": None,
        "resolves": None,
        "resolution": None,
        "entries": [],
    }
    return JournalRecord(**{**base, **fields})


def headers(signature: str, at: datetime, message_id: str = "evt_1") -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


def test_event_types_follow_what_the_transaction_is():
    assert ev.event_type(record()) == ev.POSTED
    assert ev.event_type(record(pending=True, timeout_seconds=60)) == ev.PENDING
    assert ev.event_type(record(resolves="x", resolution="voided")) == ev.RESOLVED
    assert ev.event_type(record(reverses="x")) == ev.REVERSED


@given(st.integers(0, 10**17), st.integers(0, 10**17))
def test_cursors_round_trip(block, sequence):
    position = ev.Position(block, sequence)
    assert ev.decode_cursor(ev.encode_cursor(position)) == position


def test_no_cursor_is_the_start_and_a_foreign_one_is_refused():
    assert ev.decode_cursor(None) == ev.START == ev.decode_cursor("")
    for bad in ("%%%", ev.paging.encode_cursor("a.b"), ev.paging.encode_cursor("1")):
        with pytest.raises(errors.InvalidCursor):
            ev.decode_cursor(bad)


def test_a_signature_verifies_with_the_library_and_fails_on_any_change():
    secret = new_secret()
    now = datetime.now(UTC)
    signature = sign([secret], "evt_1", now, BODY)
    assert Webhook(secret).verify(BODY, headers(signature, now)) == {
        "id": "evt_1",
        "type": "transaction.posted",
    }
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"posted", b"pending"), headers(signature, now))
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, headers(signature, now, message_id="evt_2"))
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers(signature, now))


def test_an_old_timestamp_fails_even_with_a_valid_signature():
    secret = new_secret()
    then = datetime.now(UTC) - timedelta(minutes=10)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(BODY, headers(sign([secret], "evt_1", then, BODY), then))


def test_during_a_rotation_either_secret_verifies():
    old, new = new_secret(), new_secret()
    now = datetime.now(UTC)
    signature = sign([new, old], "evt_1", now, BODY)
    assert len(signature.split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(BODY, headers(signature, now))


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/x",
        "ftp://example.com/x",
        "https:///x",
        "https://u:p@example.com/x",
        "https://example.com:0/x",
        "https://example.com:99999/x",
        "https://exämple.com/x",
        "https://example.com/\n",
    ],
)
def test_urls_that_are_refused(url):
    with pytest.raises(errors.InvalidValue):
        check_url(url, allow_private=False)


def test_http_is_allowed_only_with_private_addresses():
    assert check_url("http://127.0.0.1:8080/x", allow_private=True) == "127.0.0.1"
    assert check_url("https://hooks.example.com/x", allow_private=False) == "hooks.example.com"


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "::1",
        "fe80::1%eth0",
        "fc00::1",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "::ffff:10.0.0.1",
        "100.64.0.1",
    ],
)
def test_addresses_that_are_not_public_are_refused(address):
    with pytest.raises(errors.InvalidValue, match="not a public address"):
        check_addresses("h", ["93.184.215.14", address], allow_private=False)
    check_addresses("h", [address], allow_private=True)


def test_public_addresses_pass_and_none_at_all_is_refused():
    check_addresses(
        "h", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"], allow_private=False
    )
    with pytest.raises(errors.InvalidValue, match="does not resolve"):
        check_addresses("h", [], allow_private=True)


@given(st.integers(0, 200), st.floats(0, 0.999))
def test_backoff_grows_and_stays_under_its_cap(attempt, jitter):
    pause = backoff_seconds(attempt, 0.5, 60.0, jitter)
    assert 0.25 <= pause <= 60.0
    assert pause >= min(60.0, 0.5 * 2**attempt) / 2


def test_a_plain_http_url_is_refused_with_the_setting_that_allows_it():
    with pytest.raises(errors.InvalidValue, match=r"LEDGER_WEBHOOK_ALLOW_PRIVATE=true"):
        check_url("http://127.0.0.1:8080/hook", allow_private=False)
