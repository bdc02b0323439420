"""A batch of postings inside one posting unit: the PostingUnit methods of
`ledger.engine.batch`, mixed into `SqlPostingUnit`. The rows travel as
arrays, one per column (`batch_statements.py`), through the same wire as a
single posting's statements: on PostgreSQL the lock goes with BEGIN and
both writes with COMMIT, two messages for the whole batch."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import msgspec
from sqlalchemy import and_, select
from sqlalchemy import exc as sa_exc

from ledger.engine import pending
from ledger.engine.batch_model import BatchKeyRecord, BatchWrite, StoredBatch
from ledger.engine.model import (
    AccountState,
    BalanceDelta,
    HeaderRef,
    IdempotencyKey,
    StoredPosting,
    Transaction,
)
from ledger.storage import failures, ids, rows
from ledger.storage.posting import batch_statements as statements
from ledger.storage.queries import audit, transactions
from ledger.storage.retry import KeyRace
from ledger.storage.tables import BATCH_KEY_CONSTRAINT, IDEMPOTENCY_CONSTRAINT, posting_batches
from ledger.storage.tables import transactions as transactions_table


class BatchMethods:
    """Needs `conn`, `attempt` and `wire` (see `SqlPostingUnit`)."""

    async def lock_accounts(
        self, account_ids: Sequence[str]
    ) -> tuple[datetime, dict[str, AccountState]]:
        found = await self.wire.open(
            ("batch_lock",), lambda: statements.LOCK, {"ids": account_ids}, wait_first=True
        )
        states = {row.id: rows.account_state(row) for row in found if row.id is not None}
        return found[0].now, states

    async def find_by_keys(self, keys: Sequence[IdempotencyKey]) -> dict[str, StoredPosting]:
        if not keys:
            return {}
        await self.wire.before_sqlalchemy()
        t = transactions_table.c
        client_ids = {k.client_id for k in keys}
        assert len(client_ids) == 1, "a batch's keys belong to one client"
        found = await self.conn.execute(
            select(t.idempotency_key).where(
                and_(t.client_id == client_ids.pop(), t.idempotency_key.in_([k.key for k in keys]))
            )
        )
        stored: dict[str, StoredPosting] = {}
        for (key,) in found.all():
            posting = await transactions.by_key(self.conn, IdempotencyKey(keys[0].client_id, key))
            assert posting is not None  # same snapshot as the row just read
            stored[key] = posting
        return stored

    async def find_batch(self, key: IdempotencyKey) -> StoredBatch | None:
        await self.wire.before_sqlalchemy()
        b = posting_batches.c
        row = (
            await self.conn.execute(
                select(b.fingerprint, b.transaction_ids).where(
                    and_(b.client_id == key.client_id, b.idempotency_key == key.key)
                )
            )
        ).first()
        return None if row is None else StoredBatch(row.fingerprint, row.transaction_ids)

    async def load_transactions(self, transaction_ids: Sequence[str]) -> list[Transaction]:
        await self.wire.before_sqlalchemy()
        loaded = []
        for transaction_id in transaction_ids:
            found = await transactions.load(self.conn, transaction_id)
            assert found is not None, "an atomic batch names a transaction that is not there"
            loaded.append(found)
        return loaded

    async def write_batch(self, write: BatchWrite) -> list[Transaction]:
        self.attempt.wrote = True
        refs = [ids.new_transaction_id() for _ in write.postings]
        self.attempt.written += [str(ref) for ref in refs]
        created_at = write.created_at
        header_rows = []
        audit_rows = [_audit_row(r) for r in write.records]
        entry_rows = []
        for ref, posting in zip(refs, write.postings, strict=True):
            h = posting.header
            assert h.audit is not None, "a posting reached storage without its audit row"
            header_rows.append(
                {
                    "id": ref,
                    "idempotency_key": h.idempotency_key,
                    "fingerprint": h.fingerprint,
                    "description": h.description,
                    "metadata": msgspec.json.encode(h.metadata).decode(),
                    "pending": h.pending,
                    "timeout_seconds": h.timeout_seconds,
                }
            )
            audit_rows.append(_audit_row(h.audit, ref))
            entry_rows += [
                {
                    "account_id": e.account_id,
                    "entry_id": ids.new_entry_id(created_at),
                    "transaction_id": ref,
                    "leg": e.leg,
                    "direction": e.direction,
                    "amount": e.amount,
                    "currency": e.currency,
                    "pending": e.pending,
                }
                for e in posting.entries
            ]
        client_id = write.postings[0].header.client_id if write.postings else ""
        heads = {"client_id": client_id}
        heads |= _arrays("h", statements.HEADER_ARRAYS, header_rows)
        heads |= _arrays("al", statements.AUDIT_ARRAYS, audit_rows)
        await self._send(("batch_headers",), statements.HEADERS, heads)
        if write.postings or write.batch is not None:
            params = _write_params(write, refs, entry_rows)
            await self._send(("batch_writes",), statements.WRITES, params)
        return _transactions(write, refs, entry_rows)

    async def _send(self, key: tuple, statement, params: dict) -> None:
        """Through the wire; a key taken meanwhile makes the unit retry
        (the next attempt looks every key up)."""
        try:
            await self.wire.write(key, lambda: statement, params)
        except sa_exc.IntegrityError as exc:
            race = key_race(exc)
            if race is None:
                raise
            raise race from exc


def key_race(exc: sa_exc.IntegrityError) -> KeyRace | None:
    """A unique key of a posting or of an atomic batch, taken by a
    transaction that committed meanwhile: the retry finds it."""
    if failures.constraint_name(exc) in (IDEMPOTENCY_CONSTRAINT, BATCH_KEY_CONSTRAINT):
        return KeyRace()
    return None


def _arrays(prefix: str, columns: dict, values: list[dict]) -> dict:
    """One array parameter per column: `<prefix>_<column>`."""
    return {f"{prefix}_{name}": [row[name] for row in values] for name in columns}


def _write_params(write: BatchWrite, refs: list[uuid.UUID], entry_rows: list[dict]) -> dict:
    """The parameters of `statements.WRITES`."""
    first_of = {}  # a hot account's delta row needs a transaction of the batch
    for ref, posting in zip(refs, write.postings, strict=True):
        for e in posting.entries:
            first_of.setdefault(e.account_id, ref)
    # An atomic batch of replays writes only its key row, and has no time.
    assert write.created_at is not None or not write.postings, "postings without their time"
    expiries = [
        {
            "transaction_id": ref,
            "expires_at": pending.expires_at(write.created_at, p.header.timeout_seconds),
        }
        for ref, p in zip(refs, write.postings, strict=True)
        if p.header.pending and p.header.timeout_seconds is not None
    ]
    params = {"created_at": write.created_at}
    params |= _arrays("e", statements.ENTRY_ARRAYS, entry_rows)
    params |= _arrays(
        "hd", statements.HOT_ARRAYS, [_totals(d, first_of[d.account_id]) for d in write.hot]
    )
    params |= _arrays("x", statements.EXPIRY_ARRAYS, expiries)
    params |= _arrays("b", statements.BATCH_ARRAYS, _batch_rows(write.batch, refs))
    params |= _arrays("n", statements.NET_ARRAYS, [_totals(d) for d in write.ordinary])
    return params


def _totals(d: BalanceDelta, transaction_id: uuid.UUID | None = None) -> dict:
    row = {
        "account_id": d.account_id,
        "posted_debits": d.debits,
        "posted_credits": d.credits,
        "pending_debits": d.pending_debits,
        "pending_credits": d.pending_credits,
    }
    if transaction_id is not None:
        row["transaction_id"] = transaction_id
    return row


def _batch_rows(record: BatchKeyRecord | None, refs: list[uuid.UUID]) -> list[dict]:
    """An atomic batch's key row: its slots filled with the new ids."""
    if record is None:
        return []
    new = iter(refs)
    transaction_ids = [slot if slot is not None else str(next(new)) for slot in record.slots]
    return [
        {
            "client_id": record.client_id,
            "idempotency_key": record.idempotency_key,
            "fingerprint": record.fingerprint,
            "transaction_ids": msgspec.json.encode(transaction_ids).decode(),
        }
    ]


def _transactions(
    write: BatchWrite, refs: list[uuid.UUID], entry_rows: list[dict]
) -> list[Transaction]:
    """The records of the transactions just written, in the order of
    `write.postings`."""
    by_transaction: dict[uuid.UUID, list[dict]] = {ref: [] for ref in refs}
    for row in entry_rows:
        by_transaction[row["transaction_id"]].append(row)
    assert write.created_at is not None or not refs
    return [
        rows.transaction_record(
            HeaderRef(str(ref), write.created_at), p.header, by_transaction[ref]
        )
        for ref, p in zip(refs, write.postings, strict=True)
    ]


def _audit_row(record, transaction_id=None) -> dict:
    """An audit row's values as the batch's arrays carry them: its reach
    as JSON text, like the headers' metadata."""
    row = audit.values(record, transaction_id)
    if row["reach"] is not None:
        row["reach"] = msgspec.json.encode(row["reach"]).decode()
    return row
