"""Ids the database keys its rows by, made in the service.

Transaction ids are random; entry ids are time-ordered behind the account id
that leads their key. Why each is what it is, is said at each function: a
time-ordered leading key would make one hot range on CockroachDB.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime, timedelta


def new_transaction_id() -> uuid.UUID:
    """Random: transaction ids lead their table's primary key, and a
    time-ordered leading key would send every insert on CockroachDB to one
    range."""
    return uuid.uuid4()


def new_entry_id(at: datetime | None = None) -> uuid.UUID:
    """Time-ordered (UUIDv7 layout: 48 bits of milliseconds, then random).

    Safe on both engines because the entries key is (account_id, entry_id):
    the random-ish account id leads, so inserts spread across ranges, while
    one account's history stays in time order for pagination.

    The store passes the transaction's `created_at` (the database's time), so
    that a range of entry ids is a range of creation times: `as_of` on a hot
    account reads the entries after a snapshot by that range, through the
    primary key, with no other index.
    """
    millis = _millis(at) if at is not None else time.time_ns() // 1_000_000
    value = (millis & ((1 << 48) - 1)) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return uuid.UUID(int=value)


def entry_id_floor(at: datetime) -> uuid.UUID:
    """The smallest entry id `new_entry_id` can give in `at`'s millisecond."""
    return uuid.UUID(int=(_millis(at) & ((1 << 48) - 1)) << 80)


def entry_id_ceiling(at: datetime) -> uuid.UUID:
    """An entry id above every one `new_entry_id` can give at or before `at`."""
    return uuid.UUID(int=((_millis(at) + 1) & ((1 << 48) - 1)) << 80)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _millis(at: datetime) -> int:
    """Whole milliseconds since the epoch, exactly (no float rounding)."""
    return (at - _EPOCH) // timedelta(milliseconds=1)
