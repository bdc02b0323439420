"""The steps every posting shares, inside one unit of work: write the
header, lock and check the accounts, write the legs; and answer a key that
was used before. `ledger.engine.ledger` composes them into the use cases."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from ledger.engine import access, errors
from ledger.engine.access import Actor
from ledger.engine.audit import AuditRecord
from ledger.engine.legs import Judge
from ledger.engine.model import (
    IdempotencyKey,
    Leg,
    NewEntry,
    PostingResult,
    StoredPosting,
    Transaction,
    TransactionHeader,
)
from ledger.engine.ports import AuditStore, PostingUnit


def header(
    key: IdempotencyKey,
    fingerprint: str,
    description: str | None,
    metadata: dict,
    *,
    actor: Actor,
    action: str,
    target: str | None = None,
    reach: Iterable[str] = (),
    **fields,
) -> TransactionHeader:
    """The transaction row of a posting under `key`, with its audit row
    (`actor` did `action` to `target`, by default the new transaction, on
    the accounts of `reach`); `fields` are the optional columns (pending,
    timeout, what it reverses or resolves)."""
    return TransactionHeader(
        client_id=key.client_id,
        idempotency_key=key.key,
        fingerprint=fingerprint,
        description=description,
        metadata=metadata,
        audit=AuditRecord(
            actor=actor,
            action=action,
            outcome="created",
            target=target,
            fingerprint=fingerprint,
            reach=tuple(sorted(set(reach))) or None,
        ),
        **fields,
    )


async def write(
    unit: PostingUnit,
    header: TransactionHeader,
    legs: list[Leg],
    *,
    pending: bool = False,
    release: list[Leg] | None = None,
) -> Transaction:
    """Write the header, then lock, check and write the legs, inside `unit`.

    `legs` are written as entries (pending ones when `pending`); `release`
    are the legs of a pending transaction being resolved, taken out of the
    pending totals. The header goes first so that a used idempotency key (or
    a resolution already made) is found before any rule is judged: a replay
    must return the original even when, say, the limit it once fitted under
    is now used up.

    Raises UnknownAccount, CurrencyMismatch, UnbalancedTransaction,
    LimitExceeded, BalanceOverflow, and what `unit.open_posting` raises.
    """
    release = release or []
    ref, states = await unit.open_posting(
        header, sorted({leg.account_id for leg in [*legs, *release]})
    )
    judge = Judge(states)
    entries = judge.take(legs, pending=pending, release=release)
    ordinary, hot = judge.deltas()
    # Paired assertions around the write boundary: what goes to storage
    # balances per currency, and what storage wrote is exactly that.
    assert _balanced(entries), "unbalanced entries reached the write boundary"
    written = await unit.append_entries(ref, header, entries, ordinary, hot)
    assert len(written.entries) == len(entries), "storage wrote another number of entries"
    return written


async def answered(
    store: AuditStore,
    result: PostingResult,
    *,
    actor: Actor,
    action: str,
    fingerprint: str,
    target: str | None = None,
) -> PostingResult:
    """`result`, once a replay (the stored answer to a key used before, which
    writes nothing) has its own audit row: the same action, target and
    fingerprint as the row of the write it repeats, so a request and its
    identical retry read alike in the trail."""
    if result.replayed:
        await store.insert_audit(
            replay_record(result.transaction, actor, action, fingerprint, target)
        )
    return result


def replay_record(
    transaction: Transaction, actor: Actor, action: str, fingerprint: str, target: str | None
) -> AuditRecord:
    """The audit row of a replay of `transaction`."""
    return AuditRecord(
        actor=actor,
        action=action,
        outcome="replayed",
        target=target or transaction.id,
        fingerprint=fingerprint,
        reach=tuple(sorted({e.account_id for e in transaction.entries})) or None,
    )


def _balanced(entries: list[NewEntry]) -> bool:
    sums: dict[str, int] = defaultdict(int)
    for e in entries:
        sums[e.currency] += e.amount if e.direction == "debit" else -e.amount
    return not any(sums.values())


async def replay_or_target(
    unit: PostingUnit, key: IdempotencyKey, fingerprint: str, transaction_id: str, actor: Actor
) -> PostingResult | Transaction:
    """For an action on an existing transaction: the stored answer if this
    key was used already, else the transaction acted on. Reach is judged
    first, on the transaction acted on and on a stored answer alike: a
    replay answers only a caller that could have made the request, and a
    transaction out of reach is not found (its accounts are not named).
    Raises TransactionNotFound, Forbidden, IdempotencyKeyReused."""
    stored = await unit.find_by_key(key)
    target = await unit.get_transaction(transaction_id)
    if target is None or not access.reaches_all(actor, (e.account_id for e in target.entries)):
        raise errors.TransactionNotFound(
            f"no transaction {transaction_id!r}", transaction_id=transaction_id
        )
    if stored is not None:
        return replay(stored, fingerprint, key, unit, actor)
    return target


def replay(
    stored: StoredPosting,
    fingerprint: str,
    key: IdempotencyKey,
    unit: PostingUnit,
    actor: Actor,
) -> PostingResult:
    """The stored answer for a key used before. Raises Forbidden when the
    stored transaction touches an account `actor` does not reach (whatever
    the request; naming nothing of it), IdempotencyKeyReused when the
    request differs from the one stored under the key."""
    if not access.reaches_all(actor, (e.account_id for e in stored.transaction.entries)):
        raise errors.Forbidden(
            f"idempotency key {key.key!r} was used for a posting outside this API key's "
            "reach; use a new key",
            idempotency_key=key.key,
        )
    if stored.fingerprint != fingerprint:
        raise errors.IdempotencyKeyReused(
            f"idempotency key {key.key!r} was already used for a different request "
            f"(transaction {stored.transaction.id}); use a new key for a new posting",
            idempotency_key=key.key,
            transaction_id=stored.transaction.id,
        )
    # Written by an attempt of this very request whose commit was ambiguous:
    # answer as the first answer would have.
    return PostingResult(stored.transaction, replayed=not unit.wrote_earlier(stored.transaction.id))
