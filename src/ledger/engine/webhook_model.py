"""Webhook endpoints and deliveries: the records, and the rules of what an
endpoint may be (its URL, its event types) and how a delivery is signed.
No I/O here: `ledger.engine.webhooks` has the use cases,
`ledger.engine.delivery` the deliverer.

Deliveries follow Standard Webhooks (https://www.standardwebhooks.com):
headers `webhook-id` (the event's id, the same on every retry),
`webhook-timestamp` and `webhook-signature` (HMAC-SHA256 over
`id.timestamp.body`, made by the `standardwebhooks` package). During a
secret rotation's overlap both secrets sign, and the header carries both
signatures.
"""

from __future__ import annotations

import base64
import ipaddress
import os
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Literal, NamedTuple
from urllib.parse import urlsplit

import msgspec
from standardwebhooks.webhooks import Webhook as Signer

from ledger.engine import access, errors
from ledger.engine.access import Actor
from ledger.engine.events import EVENT_TYPES, Position
from ledger.engine.free_text import check_text
from ledger.engine.reconcile.feed import EXCEPTION

EndpointStatus = Literal["active", "paused", "disabled"]
# Why an endpoint is paused: the key that registered it was revoked.
KEY_REVOKED = "key-revoked"
DeliveryOutcome = Literal["delivered", "failed", "gone"]

MAX_URL_CHARS = 2048
MAX_DESCRIPTION_CHARS = 500
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
ID_PREFIX = "wh_"


class NewWebhook(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    url: str
    # The event types to deliver; absent: every type.
    event_types: list[str] | None = None
    description: str | None = None


class ReplayRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Deliver again every event after `after` (an event cursor; absent or
    empty: from the first event)."""

    after: str | None = None


class Webhook(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    url: str
    event_types: list[str]
    description: str | None
    # active; paused, when the key that registered it was revoked
    # (`status_reason` "key-revoked"), until a key that reaches it resumes
    # it; or disabled: by a 410 from the receiver, or after failing for
    # `LEDGER_WEBHOOK_DISABLE_AFTER_SECONDS` (`status_reason` says which),
    # until a replay turns it on again.
    status: EndpointStatus
    status_reason: str | None
    created_at: datetime
    # The cursor of the last event the receiver acknowledged (2xx).
    cursor: str
    failing_since: datetime | None
    last_error: str | None
    delivered_at: datetime | None
    # During a rotation's overlap, the old secret signs too until then.
    previous_secret_until: datetime | None
    # The account prefixes of the key that made it: the endpoint gets only
    # events of transactions whose every leg is in them (null: all).
    accounts: list[str] | None
    # The key that registered it, or resumed it last: revoking that key
    # pauses the endpoint.
    key_id: str | None = None


class IssuedWebhook(Webhook, frozen=True, kw_only=True):
    """A webhook with its signing secret: shown once, at creation and at
    rotation."""

    secret: str


class StoredWebhook(msgspec.Struct, frozen=True, kw_only=True):
    """An endpoint as the deliverer needs it."""

    webhook: Webhook
    client_id: str
    secret: str
    previous_secret: str | None
    generation: int
    block: int  # where its cursor is
    sequence: int
    exception: int = 0


class Delivery(msgspec.Struct, frozen=True):
    id: str
    event_id: str
    sequence: int
    attempt: int
    attempted_at: datetime
    outcome: DeliveryOutcome
    status_code: int | None
    error: str | None
    duration_ms: int


# --- the rules ------------------------------------------------------------------------


def new_id() -> str:
    return ID_PREFIX + os.urandom(12).hex()


def known_id(webhook_id: str) -> bool:
    rest = webhook_id.removeprefix(ID_PREFIX)
    return webhook_id.startswith(ID_PREFIX) and len(rest) == 24 and rest.isalnum()


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode()


def check_new_webhook(cmd: NewWebhook, *, allow_private: bool) -> str:
    """The URL's host, once the command passes. Raises InvalidValue."""
    host = check_url(cmd.url, allow_private=allow_private)
    if cmd.event_types is not None:
        unknown = [t for t in cmd.event_types if t not in EVENT_TYPES]
        if unknown or not cmd.event_types:
            raise errors.InvalidValue(
                f"unknown event type {unknown[0] if unknown else ''!r}; "
                f"the types are {', '.join(EVENT_TYPES)}",
                field="event_types",
            )
    check_text(cmd.description, "description", MAX_DESCRIPTION_CHARS)
    return host


def readable_types(cmd: NewWebhook, actor: Actor) -> list[str]:
    """The types the endpoint gets: those asked for, or (none asked for)
    every type the creating key may read. Reconciliation events need
    `reconciliation:read` beside `webhooks:admin`. Raises MissingScope."""
    may_reconcile = access.holds(actor, access.RECONCILIATION_READ)
    if cmd.event_types is None:
        return [t for t in EVENT_TYPES if may_reconcile or t != EXCEPTION]
    if EXCEPTION in cmd.event_types and not may_reconcile:
        raise errors.MissingScope(
            f"the event type {EXCEPTION!r} needs the scope {access.RECONCILIATION_READ!r}",
            scope=access.RECONCILIATION_READ,
        )
    return list(dict.fromkeys(cmd.event_types))


def check_url(url: str, *, allow_private: bool) -> str:
    """An absolute https URL (http too where private addresses are allowed,
    as in tests) with a host and no credentials; its host. Raises
    InvalidValue."""
    if len(url) > MAX_URL_CHARS or not url.isascii() or not url.isprintable():
        raise errors.InvalidValue(
            f"url must be printable ASCII of at most {MAX_URL_CHARS} characters", field="url"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise errors.InvalidValue(f"url is not a valid URL: {exc}", field="url") from exc
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes or not parts.hostname:
        hint = ""
        if parts.scheme == "http" and parts.hostname:
            hint = (
                "; plain http is allowed only with LEDGER_WEBHOOK_ALLOW_PRIVATE=true (for "
                "receivers on this machine or a private network)"
            )
        raise errors.InvalidValue(
            f"url must be an absolute {' or '.join(schemes)} URL with a host{hint}", field="url"
        )
    if parts.username is not None or parts.password is not None:
        raise errors.InvalidValue("url must not carry credentials", field="url")
    if port == 0:
        raise errors.InvalidValue("url must not name port 0", field="url")
    return parts.hostname


def check_addresses(host: str, addresses: list[str], *, allow_private: bool) -> None:
    """Refuse a host that resolves to nothing, or (unless `allow_private`)
    to any address that is not globally routable: private, loopback,
    link-local, multicast, reserved, unspecified; the server-side request
    forgery door. Raises InvalidValue."""
    if not addresses:
        raise errors.InvalidValue(f"url's host {host!r} does not resolve", field="url")
    if allow_private:
        return
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if not address.is_global or address.is_multicast:
            raise errors.InvalidValue(
                f"url's host {host!r} resolves to {text}, which is not a public address; "
                "webhooks go to public addresses only (LEDGER_WEBHOOK_ALLOW_PRIVATE=true "
                "allows others)",
                field="url",
                address=text,
            )


def sign(secrets: list[str], message_id: str, timestamp: datetime, body: bytes) -> str:
    """The `webhook-signature` header: a signature by each secret."""
    data = body.decode()
    return " ".join(Signer(s).sign(message_id, timestamp, data) for s in secrets)


def backoff_seconds(attempt: int, base: float, cap: float, jitter: float) -> float:
    """Capped exponential backoff, jittered to between half and all of it
    (`jitter` is a number in [0, 1) the caller draws), so that endpoints
    failing together do not retry together."""
    return min(cap, base * 2 ** min(attempt, 30)) * (0.5 + jitter / 2)


class Sent(NamedTuple):
    """What came of one request: the status, or None and why there was none."""

    status: int | None
    error: str | None
    duration_ms: int


Send = Callable[[str, dict[str, str], bytes], Awaitable[Sent]]


class DeliverySettings(msgspec.Struct, frozen=True, kw_only=True):
    lease_seconds: float = 5.0
    claim_seconds: float = 1.0
    max_endpoints: int = 100
    flush_seconds: float = 0.25
    batch: int = 100
    backoff_base_seconds: float = 0.5
    backoff_cap_seconds: float = 60.0
    disable_after_seconds: float = 3 * 86_400.0
    retention_seconds: float = 3 * 86_400.0
    prune_seconds: float = 60.0


class Progress(msgspec.Struct, kw_only=True):
    """Where one endpoint's delivery stands, as the next write will record it."""

    position: Position
    failing_since: datetime | None
    last_error: str | None
    delivered_at: datetime | None
    disable_reason: str | None = None
    attempts: list[Delivery] = msgspec.field(default_factory=list)


class WebhookChange(msgspec.Struct, frozen=True, kw_only=True):
    """What an operator's change sets on an endpoint (absent: unchanged).
    Every change bumps the endpoint's generation, so a deliverer working
    from the old state stops and reloads."""

    deleted: bool = False
    secret: str | None = None
    # With a new secret: the old one signs too until this time.
    previous_until: datetime | None = None
    # A replay: the cursor moves here, and a disabled endpoint is active
    # again (a paused one stays paused).
    replay_from: Position | None = None
    # A resume: a paused endpoint is active again and belongs to this key.
    resumed_by: str | None = None
