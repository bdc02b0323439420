"""One attempt of one posting transaction: the engine's PostingUnit. It
turns the engine's header and legs into statement parameters and hands them
to the wire path its store chose (`wire.py`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from psycopg.types.json import Jsonb
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.engine import errors, pending
from ledger.engine.audit import AuditRecord
from ledger.engine.model import (
    AccountState,
    BalanceDelta,
    HeaderRef,
    IdempotencyKey,
    NewEntry,
    StoredPosting,
    Transaction,
    TransactionHeader,
)
from ledger.engine.ports import PostingUnit
from ledger.storage import failures, ids, rows
from ledger.storage.posting.batch_unit import BatchMethods, key_race
from ledger.storage.posting.statements import open_posting, write_entries
from ledger.storage.posting.wire import Wire
from ledger.storage.queries import audit, expiry, transactions
from ledger.storage.retry import Attempt, KeyRace
from ledger.storage.tables import (
    IDEMPOTENCY_CONSTRAINT,
    RESOLVES_CONSTRAINT,
    REVERSES_CONSTRAINT,
)


class SqlPostingUnit(BatchMethods, PostingUnit):
    def __init__(self, conn: AsyncConnection, attempt: Attempt, wire: Wire) -> None:
        self.conn = conn
        self.attempt = attempt
        self.wire = wire

    def wrote_earlier(self, transaction_id: str) -> bool:
        return transaction_id in self.attempt.unsure

    @property
    def first_attempt(self) -> bool:
        return self.attempt.number == 1

    async def finish(self) -> None:
        """Send what the wire holds, COMMIT with it on PostgreSQL (where a
        batch's writes first meet the unique keys)."""
        try:
            await self.wire.finish()
        except sa_exc.IntegrityError as exc:
            race = key_race(exc)
            if race is None:
                raise
            raise race from exc

    async def find_by_key(self, key: IdempotencyKey) -> StoredPosting | None:
        await self.wire.before_sqlalchemy()
        return await transactions.by_key(self.conn, key)

    async def now(self) -> datetime:
        await self.wire.before_sqlalchemy()
        return (await self.conn.execute(select(func.now()))).scalar_one()

    async def get_transaction(self, transaction_id: str) -> Transaction | None:
        await self.wire.before_sqlalchemy()
        # The transaction a posting resolves or reverses: its place in the
        # sealed journal plays no part in the rules.
        return await transactions.load(self.conn, transaction_id, with_place=False)

    async def open_posting(
        self, header: TransactionHeader, account_ids: Sequence[str]
    ) -> tuple[HeaderRef, dict[str, AccountState]]:
        transaction_id = ids.new_transaction_id()
        self.attempt.wrote = True
        self.attempt.written.append(str(transaction_id))
        n = len(account_ids)
        params = {
            "id": transaction_id,
            "client_id": header.client_id,
            "idempotency_key": header.idempotency_key,
            "fingerprint": header.fingerprint,
            "reverses": uuid.UUID(header.reverses) if header.reverses else None,
            "description": header.description,
            "metadata": Jsonb(header.metadata),
            "pending": header.pending,
            "timeout_seconds": header.timeout_seconds,
            "resolves": uuid.UUID(header.resolves) if header.resolves else None,
            "resolution": header.resolution,
            **{f"id_{i}": a for i, a in enumerate(account_ids)},
            **_audit_params(header.audit, transaction_id),
        }
        try:
            found = await self.wire.open(("open", n), lambda: open_posting(n), params)
        except sa_exc.IntegrityError as exc:
            refusal = _refusal(exc, header)
            if refusal is None:
                raise
            raise refusal from exc
        ref = HeaderRef(str(transaction_id), found[0].header_created_at)
        return ref, {row.id: rows.account_state(row) for row in found if row.id is not None}

    async def append_entries(
        self,
        ref: HeaderRef,
        header: TransactionHeader,
        new_entries: Sequence[NewEntry],
        deltas: Sequence[BalanceDelta],
        hot: Sequence[BalanceDelta] = (),
    ) -> Transaction:
        transaction_id = uuid.UUID(ref.id)
        written = [
            {
                "account_id": e.account_id,
                "entry_id": ids.new_entry_id(ref.created_at),
                "transaction_id": transaction_id,
                "leg": e.leg,
                "direction": e.direction,
                "amount": e.amount,
                "currency": e.currency,
                "created_at": ref.created_at,
                "pending": e.pending,
            }
            for e in new_entries
        ]
        # One statement whatever the number of legs: the balance UPDATE ...
        # FROM (VALUES ...) with the entries' and hot deltas' multi-row
        # INSERTs as CTEs, compiled once per size. A hot account's row is
        # neither locked nor updated: it gets one delta row, which the
        # compactor folds.
        params = _write_params(written, transaction_id, ref.created_at, deltas, hot)
        if params:
            sizes = (len(written), len(hot), len(deltas))
            await self.wire.write(("write", *sizes), lambda: write_entries(*sizes), params)
        deadline = pending.expires_at(ref.created_at, header.timeout_seconds)
        if header.pending and deadline is not None:
            await self.wire.write(
                ("enqueue",),
                lambda: expiry.ENQUEUE,
                {"transaction_id": transaction_id, "expires_at": deadline},
            )
        if header.resolves is not None:
            await self.wire.write(
                ("dequeue",), lambda: expiry.DEQUEUE, {"resolves": uuid.UUID(header.resolves)}
            )
        return rows.transaction_record(ref, header, written)


def _write_params(
    written: list[dict],
    transaction_id: uuid.UUID,
    created_at: datetime,
    deltas: Sequence[BalanceDelta],
    hot: Sequence[BalanceDelta],
) -> dict:
    """The parameters of `statements.write_entries`: `<column>_<i>` per
    entry, `h<column>_<i>` per hot delta, `a_i d_i c_i pd_i pc_i` per
    balance row."""
    params = {f"{k}_{i}": v for i, row in enumerate(written) for k, v in row.items()}
    for i, d in enumerate(hot):
        params[f"haccount_id_{i}"] = d.account_id
        params[f"htransaction_id_{i}"] = transaction_id
        params[f"hcreated_at_{i}"] = created_at
        params[f"hposted_debits_{i}"], params[f"hposted_credits_{i}"] = d.debits, d.credits
        params[f"hpending_debits_{i}"] = d.pending_debits
        params[f"hpending_credits_{i}"] = d.pending_credits
    for i, d in enumerate(deltas):
        params[f"a_{i}"] = d.account_id
        params[f"d_{i}"], params[f"c_{i}"] = d.debits, d.credits
        params[f"pd_{i}"], params[f"pc_{i}"] = d.pending_debits, d.pending_credits
    return params


def _audit_params(record: AuditRecord | None, transaction_id: uuid.UUID) -> dict:
    """The audit row's parameters in `statements.open_posting`. Every
    posting carries one: a write without its audit row is a bug."""
    assert record is not None, "a posting reached storage without its audit row"
    row = audit.values(record, transaction_id)
    if row["reach"] is not None:
        row["reach"] = Jsonb(row["reach"])
    return {f"audit_{k}": v for k, v in row.items()}


def _refusal(exc: sa_exc.IntegrityError, header: TransactionHeader) -> Exception | None:
    """What a constraint the header insert hit means: a key taken meanwhile
    (the retry finds the winner), or an action another transaction took."""
    name = failures.constraint_name(exc)
    if name == IDEMPOTENCY_CONSTRAINT:
        return KeyRace()
    if name == RESOLVES_CONSTRAINT:
        return errors.AlreadyResolved(
            f"pending transaction {header.resolves!r} was already resolved",
            transaction_id=header.resolves,
        )
    if name == REVERSES_CONSTRAINT:
        return errors.AlreadyReversed(
            f"transaction {header.reverses!r} was already reversed",
            transaction_id=header.reverses,
        )
    return None
