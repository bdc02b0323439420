"""Who may do what: API keys, their scopes and the accounts they reach, and
the actor a request acts as (what its audit row records).

A key is `lk_<key id>_<secret>`. The key id is not secret: it names the key
in logs, the audit trail and `ledger keys list`, and finds its row. Only the
SHA-256 of the whole key is stored.

Why SHA-256 and not a slow password hash (bcrypt, scrypt, Argon2): those
exist to make guessing a *low-entropy* human password from a stolen hash
expensive. Our secrets are 256 random bits made by `secrets`; no amount of
hashing per guess makes 2^256 guesses more feasible or less, so a fast hash
loses nothing, and it keeps the check to about a microsecond per request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import datetime

import msgspec

from ledger.engine import errors

PREFIX = "lk"

ACCOUNTS_READ = "accounts:read"
ACCOUNTS_WRITE = "accounts:write"
TRANSACTIONS_READ = "transactions:read"
TRANSACTIONS_WRITE = "transactions:write"
AUDIT_READ = "audit:read"
METRICS_READ = "metrics:read"
KEYS_ADMIN = "keys:admin"
JOURNAL_READ = "journal:read"
EVENTS_READ = "events:read"
WEBHOOKS_ADMIN = "webhooks:admin"
RECONCILIATION_READ = "reconciliation:read"
RECONCILIATION_WRITE = "reconciliation:write"
REPORTS_READ = "reports:read"
SCOPES = (
    ACCOUNTS_READ,
    ACCOUNTS_WRITE,
    TRANSACTIONS_READ,
    TRANSACTIONS_WRITE,
    AUDIT_READ,
    METRICS_READ,
    KEYS_ADMIN,
    JOURNAL_READ,
    EVENTS_READ,
    WEBHOOKS_ADMIN,
    RECONCILIATION_READ,
    RECONCILIATION_WRITE,
    REPORTS_READ,
)

# The key `ledger serve` makes when the database holds none.
BOOTSTRAP_NAME = "bootstrap"
BOOTSTRAP_CLIENT = "admin"

MAX_NAME_CHARS = 128
MAX_CLIENT_CHARS = 128
MAX_PREFIXES = 100
MAX_PREFIX_CHARS = 128
MAX_REQUESTS_PER_SECOND = 1_000_000


class Actor(msgspec.Struct, frozen=True):
    """Who a request acts as, and why: what its audit row records. The
    ledger's own background work acts as a system actor (no key)."""

    request_id: str
    client_id: str
    key_id: str | None = None
    key_name: str = "system"
    source: str | None = None
    reason: str | None = None
    # Account-id prefixes the key is limited to; None reaches every account.
    accounts: tuple[str, ...] | None = None
    # The key's scopes; None (the ledger's own work) holds every scope.
    scopes: tuple[str, ...] | None = None


def holds(actor: Actor, scope: str) -> bool:
    """Whether `actor` holds `scope`: for what a route shows beyond its own
    scope (the event feed's reconciliation events need
    `reconciliation:read` too)."""
    return actor.scopes is None or scope in actor.scopes


def system(name: str, client_id: str = "ledger") -> Actor:
    """The actor of work the ledger does by itself (expiry, bootstrap) or
    that a caller in this process asks for without a key (tests, tools)."""
    return Actor(request_id=f"system:{name}", client_id=client_id, key_name=f"system:{name}")


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    client_id: str
    scopes: list[str]
    # Account-id prefixes the key is limited to (reads, and every leg of a
    # posting); null reaches every account.
    accounts: list[str] | None = None
    # Requests per second this key may make in one service process; null is
    # no limit beyond the service's own.
    requests_per_second: int | None = None
    created_at: datetime
    revoked_at: datetime | None = None


class IssuedKey(ApiKey, frozen=True, kw_only=True):
    """A key just made: the only time its secret is shown."""

    key: str


class StoredKey(msgspec.Struct, frozen=True):
    key: ApiKey
    secret_sha256: bytes


class NewKey(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: str
    client_id: str
    scopes: list[str]
    accounts: list[str] | None = None
    requests_per_second: int | None = None


# Who a call made in this process without a request acts as (the tools, the
# tests); the API always names the request's actor.
DIRECT = system("direct")


# --- the key itself ------------------------------------------------------------------


def new_key() -> tuple[str, str]:
    """(key id, key): 48 random bits of id, 256 of secret."""
    key_id = secrets.token_hex(6)
    return key_id, f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


def known_key_id(key_id: str) -> bool:
    """Whether `key_id` could name a key: one that cannot is not found, and
    never reaches SQL."""
    return 0 < len(key_id) <= 32 and key_id.isascii() and key_id.isalnum()


def key_id_of(key: str) -> str:
    """The id part of `lk_<id>_<secret>`. Raises Unauthenticated."""
    parts = key.split("_", 2)
    if (
        len(parts) != 3
        or parts[0] != PREFIX
        or not parts[1]
        or not parts[1].isalnum()
        or len(parts[1]) > 32
        or len(parts[2]) < 16
    ):
        raise errors.Unauthenticated("the API key is malformed: expected lk_<key id>_<secret>")
    return parts[1]


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def matches(stored: StoredKey, key: str) -> bool:
    """Whether `key` is the one stored, compared in constant time."""
    return hmac.compare_digest(stored.secret_sha256, digest(key))


# --- what a key may be made with -------------------------------------------------------


def check_new_key(cmd: NewKey) -> None:
    """Raises InvalidValue naming the field."""
    _text(cmd.name, "name", MAX_NAME_CHARS)
    _text(cmd.client_id, "client_id", MAX_CLIENT_CHARS)
    if not cmd.scopes:
        raise errors.InvalidValue(
            f"scopes must name at least one of {', '.join(SCOPES)}", field="scopes"
        )
    unknown = sorted(set(cmd.scopes) - set(SCOPES))
    if unknown:
        raise errors.InvalidValue(
            f"unknown scope {unknown[0]!r}; the scopes are {', '.join(SCOPES)}",
            field="scopes",
            value=unknown[0],
        )
    if cmd.accounts is not None:
        if not 1 <= len(cmd.accounts) <= MAX_PREFIXES:
            raise errors.InvalidValue(
                f"accounts must list 1 to {MAX_PREFIXES} account-id prefixes, or be left out "
                "for a key that reaches every account",
                field="accounts",
            )
        for prefix in cmd.accounts:
            _text(prefix, "accounts", MAX_PREFIX_CHARS)
    rate = cmd.requests_per_second
    if rate is not None and not 1 <= rate <= MAX_REQUESTS_PER_SECOND:
        raise errors.InvalidValue(
            f"requests_per_second must be between 1 and {MAX_REQUESTS_PER_SECOND}",
            field="requests_per_second",
        )


def _text(value: str, field: str, limit: int) -> None:
    if not value or len(value) > limit or not value.isprintable():
        raise errors.InvalidValue(f"{field} must be 1 to {limit} printable characters", field=field)


# --- what a key reaches ---------------------------------------------------------------------


def reaches(actor: Actor, account_id: str) -> bool:
    return actor.accounts is None or account_id.startswith(actor.accounts)


def reaches_all(actor: Actor, account_ids: Iterable[str]) -> bool:
    return actor.accounts is None or all(a.startswith(actor.accounts) for a in account_ids)


def check_reach(actor: Actor, account_ids: Iterable[str]) -> None:
    """Raises AccountOutOfReach for the first account outside the key's
    prefixes."""
    if actor.accounts is None:
        return
    for account_id in account_ids:
        if not account_id.startswith(actor.accounts):
            raise errors.AccountOutOfReach(
                f"this API key is limited to accounts starting with "
                f"{', '.join(repr(p) for p in actor.accounts)}; {account_id!r} is not one",
                account_id=account_id,
            )
