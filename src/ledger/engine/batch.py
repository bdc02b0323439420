"""Posting a batch: many postings in one database transaction.

Each item is judged exactly as `Postings.post` would judge it,
one after another in request order, against balances that already carry
the items accepted before it: so limits hold across the batch as they
would across single postings. What the batch shares is the overhead: one
request, one database transaction, every balance row locked once and
changed once by its net change, one delta per hot account.

An item's key replays as a single posting's does, across the two routes
(the fingerprint is a single posting's). The rule "a used key is found
before any rule is judged" is kept differently from the single path: on a
first attempt an accepted item's header insert is the check (a used key
fails it and the whole attempt retries, looking every key up first), and
the keys of the items the rules refused are looked up before the answer,
so a refusal is never given for an item that was in fact written before.
"""

from __future__ import annotations

from ledger.engine import access, audit, errors, rules
from ledger.engine.access import Actor
from ledger.engine.audit import AuditRecord
from ledger.engine.batch_model import (
    BatchKeyRecord,
    BatchPosting,
    BatchResult,
    BatchWrite,
    ItemOutcome,
    NewBatch,
    StoredBatch,
)
from ledger.engine.legs import Judge
from ledger.engine.limits import Limits
from ledger.engine.model import IdempotencyKey, NewEntry
from ledger.engine.ports import PostingStore, PostingUnit
from ledger.engine.posting import header, replay


class Batches:
    def __init__(self, store: PostingStore, limits: Limits) -> None:
        self.store = store
        self.limits = limits

    async def post(
        self, cmd: NewBatch, key: IdempotencyKey | None, actor: Actor = access.DIRECT
    ) -> BatchResult:
        """Post every item of `cmd` (see the module's docstring).

        Raises, for the whole batch with nothing written: InvalidValue (no
        items, too many, a bad or repeated item key), MissingIdempotencyKey
        (an atomic batch without its key), IdempotencyKeyReused (the batch's
        key with another body); for an atomic batch, the first refused
        item's error naming its `index`; RetriesExhausted, OutcomeUnknown.
        """
        self._check_batch(cmd, key)
        plan = _Plan(cmd, actor, self.limits)
        fingerprint = rules.fingerprint("batch", cmd)

        async def work(unit: PostingUnit) -> BatchResult:
            if cmd.atomic:
                assert key is not None
                stored = await unit.find_batch(key)
                if stored is not None:
                    return await _replay_batch(unit, stored, fingerprint, key)
            outcomes = await plan.judge(unit)
            if cmd.atomic:
                _refuse_atomic(outcomes)
            write = plan.write(outcomes)
            if cmd.atomic:
                assert key is not None
                write.batch = BatchKeyRecord(
                    key.client_id,
                    key.key,
                    fingerprint,
                    [o.transaction.id if o.transaction else None for o in outcomes],
                )
            written = iter(await unit.write_batch(write))
            return BatchResult(
                [
                    o if o.transaction or o.error else ItemOutcome(o.index, next(written))
                    for o in outcomes
                ]
            )

        result = await self.store.run(work)
        if result.replayed:
            transactions = [o.transaction for o in result.outcomes if o.transaction]
            await self.store.insert_audit(
                AuditRecord(
                    actor=actor,
                    action=audit.TRANSACTION_BATCH,
                    outcome="replayed",
                    fingerprint=fingerprint,
                    reach=_accounts(e for t in transactions for e in t.entries),
                )
            )
        return result

    def _check_batch(self, cmd: NewBatch, key: IdempotencyKey | None) -> None:
        n, most = len(cmd.transactions), self.limits.max_batch
        if not 1 <= n <= most:
            raise errors.InvalidValue(
                f"a batch holds 1 to {most} transactions; this one has {n}",
                field="transactions",
                max_batch=most,
            )
        if key is not None:
            rules.check_idempotency_key(key, self.limits)
        elif cmd.atomic:
            raise errors.MissingIdempotencyKey(
                "an atomic batch needs an Idempotency-Key for the batch itself: a unique "
                "string per batch, reused only to retry that same batch"
            )
        seen: dict[str, int] = {}
        for i, item in enumerate(cmd.transactions):
            try:
                rules.check_idempotency_key(IdempotencyKey("", item.idempotency_key), self.limits)
            except errors.LedgerError as exc:
                raise _at(i, exc, "/idempotency_key") from exc
            first = seen.setdefault(item.idempotency_key, i)
            if first != i:
                raise errors.InvalidValue(
                    f"transactions[{i}] repeats the idempotency key of transactions[{first}]; "
                    "each posting of a batch needs its own key",
                    index=i,
                    pointer=f"/transactions/{i}/idempotency_key",
                )


class _Plan:
    """A batch's items with what can be known before the database: their
    keys, fingerprints and the refusals a single posting would get without
    reading anything (shape, reach)."""

    def __init__(self, cmd: NewBatch, actor: Actor, limits: Limits) -> None:
        self.items = cmd.transactions
        self.actor = actor
        self.keys = [IdempotencyKey(actor.client_id, i.idempotency_key) for i in self.items]
        self.fingerprints = [rules.fingerprint("post", i.transaction()) for i in self.items]
        self.early: dict[int, errors.LedgerError] = {}
        for i, item in enumerate(self.items):
            try:
                rules.check_transaction_shape(item.transaction(), limits)
                access.check_reach(actor, (leg.account_id for leg in item.entries))
            except errors.LedgerError as exc:
                self.early[i] = exc
        self.entries: dict[int, list[NewEntry]] = {}
        self.judged: Judge | None = None

    async def judge(self, unit: PostingUnit) -> list[ItemOutcome]:
        """Every item's outcome; the accepted ones have neither a
        transaction nor an error yet (their `entries` are kept here)."""
        outcomes = {i: ItemOutcome(i, error=e) for i, e in self.early.items()}
        open_items = [i for i in range(len(self.items)) if i not in outcomes]
        if not unit.first_attempt:
            outcomes.update(await self._replays(unit, open_items))
        todo = [i for i in open_items if i not in outcomes]
        accounts = sorted({leg.account_id for i in todo for leg in self.items[i].entries})
        opened = await unit.lock_accounts(accounts) if todo else (None, {})
        created_at, states = opened
        judged = self.judged = Judge(states, created_at)
        self.entries = {}
        for i in todo:
            item = self.items[i]
            try:
                self.entries[i] = judged.take(item.entries, pending=item.pending)
            except errors.RuleViolated as exc:
                outcomes[i] = ItemOutcome(i, error=exc)
        if unit.first_attempt:
            refused = [i for i in todo if i in outcomes]
            outcomes.update(await self._replays(unit, refused))
        return [outcomes.get(i, ItemOutcome(i)) for i in range(len(self.items))]

    async def _replays(self, unit: PostingUnit, indexes: list[int]) -> dict[int, ItemOutcome]:
        """The outcomes of the items whose keys were used already: the
        stored transaction, or 409 for another body under the key."""
        if not indexes:
            return {}
        stored = await unit.find_by_keys([self.keys[i] for i in indexes])
        found: dict[int, ItemOutcome] = {}
        for i in indexes:
            posting = stored.get(self.keys[i].key)
            if posting is None:
                continue
            try:
                result = replay(posting, self.fingerprints[i], self.keys[i], unit, self.actor)
            except (errors.IdempotencyKeyReused, errors.Forbidden) as exc:
                found[i] = ItemOutcome(i, error=exc)
            else:
                found[i] = ItemOutcome(i, result.transaction, replayed=result.replayed)
        return found

    def write(self, outcomes: list[ItemOutcome]) -> BatchWrite:
        """What the batch writes: the accepted items' postings with their
        audit rows, the net balance changes, and an audit row for every
        item that wrote nothing."""
        assert self.judged is not None
        postings = [
            BatchPosting(self._header(o.index), self.entries[o.index])
            for o in outcomes
            if not (o.transaction or o.error)
        ]
        ordinary, hot = self.judged.deltas()
        records = [self._record(o) for o in outcomes if o.transaction or o.error]
        return BatchWrite(self.judged.created_at, postings, ordinary, hot, records)

    def _header(self, i: int):
        item = self.items[i]
        return header(
            self.keys[i],
            self.fingerprints[i],
            item.description,
            item.metadata,
            actor=self.actor,
            action=audit.TRANSACTION_CREATE,
            reach=(leg.account_id for leg in item.entries),
            pending=item.pending,
            timeout_seconds=item.timeout_seconds,
        )

    def _record(self, outcome: ItemOutcome) -> AuditRecord:
        i = outcome.index
        if outcome.error is not None:
            return AuditRecord(
                actor=self.actor,
                action=audit.TRANSACTION_CREATE,
                outcome="refused",
                fingerprint=self.fingerprints[i],
                problem=outcome.error.code,
                detail=outcome.error.detail,
                reach=_accounts(self.items[i].entries),
            )
        assert outcome.transaction is not None
        return AuditRecord(
            actor=self.actor,
            action=audit.TRANSACTION_CREATE,
            outcome="replayed",
            target=outcome.transaction.id,
            fingerprint=self.fingerprints[i],
            reach=_accounts(outcome.transaction.entries),
        )


def _refuse_atomic(outcomes: list[ItemOutcome]) -> None:
    """An atomic batch with a refused item is refused whole, with the first
    refused item's error naming its index."""
    for o in outcomes:
        if o.error is not None:
            raise _at(o.index, o.error) from o.error


def _at(index: int, exc: errors.LedgerError, field_pointer: str = "") -> errors.LedgerError:
    """`exc` as the refusal of a whole batch: the same kind and facts, with
    the item's index, and its pointer into the batch's body."""
    details = dict(exc.details)
    pointer = details.get("pointer") or field_pointer
    details["pointer"] = f"/transactions/{index}{pointer}"
    details["index"] = index
    return type(exc)(f"transactions[{index}]: {exc.detail}", **details)


async def _replay_batch(
    unit: PostingUnit, stored: StoredBatch, fingerprint: str, key: IdempotencyKey
) -> BatchResult:
    """The stored answer of an atomic batch sent again under its key."""
    if stored.fingerprint != fingerprint:
        raise errors.IdempotencyKeyReused(
            f"idempotency key {key.key!r} was already used for a different batch; use a new "
            "key for a new batch",
            idempotency_key=key.key,
        )
    transactions = await unit.load_transactions(stored.transaction_ids)
    outcomes = [
        ItemOutcome(i, t, replayed=not unit.wrote_earlier(t.id)) for i, t in enumerate(transactions)
    ]
    return BatchResult(outcomes, replayed=all(o.replayed for o in outcomes))


def _accounts(legs) -> tuple[str, ...] | None:
    """The accounts an item's audit row concerns (its reach)."""
    return tuple(sorted({leg.account_id for leg in legs})) or None
