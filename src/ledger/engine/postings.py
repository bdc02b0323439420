"""The postings' use cases: post a transaction, reverse one, read one;
post a pending one (in full or in part), void it, and expire what is
overdue. The rules are `ledger.engine.rules`', `legs`' and `pending`'s; the
steps every posting shares are `ledger.engine.posting`'s."""

from __future__ import annotations

import random

from ledger.engine import access, audit, errors, free_text, pending, reach, rules
from ledger.engine.access import DIRECT, Actor
from ledger.engine.limits import Limits
from ledger.engine.model import (
    IdempotencyKey,
    Leg,
    NewTransaction,
    PostingResult,
    PostPendingRequest,
    ReversalRequest,
    Transaction,
    VoidRequest,
)
from ledger.engine.ports import PostingStore, PostingUnit
from ledger.engine.posting import answered, header, replay, replay_or_target, write

EXPIRY = access.system("expiry", client_id="ledger-expiry")

# A resolution asked for: the fingerprint's verb (as the API's route names it).
_VERBS = {"posted": "post", "voided": "void"}

_RESOLUTION_ACTIONS = {
    "posted": audit.PENDING_POST,
    "voided": audit.PENDING_VOID,
    "expired": audit.PENDING_EXPIRE,
}


class Postings:
    def __init__(self, store: PostingStore, limits: Limits) -> None:
        self.store = store
        self.limits = limits

    async def post(
        self, cmd: NewTransaction, key: IdempotencyKey, actor: Actor = DIRECT
    ) -> PostingResult:
        """Post a balanced transaction exactly once per idempotency key.

        Raises TooFewLegs, TooManyLegs, InvalidAmount, InvalidValue,
        UnknownAccount, CurrencyMismatch, UnbalancedTransaction,
        LimitExceeded, BalanceOverflow, IdempotencyKeyReused,
        MissingIdempotencyKey, AccountOutOfReach, RetriesExhausted, OutcomeUnknown.
        """
        self._check_key(key)
        rules.check_transaction_shape(cmd, self.limits)
        access.check_reach(actor, (leg.account_id for leg in cmd.entries))
        fingerprint = rules.fingerprint("post", cmd)

        async def work(unit: PostingUnit) -> PostingResult:
            # On a first attempt the header insert is the key check (a used
            # key fails it and the retry lands below), which saves a lookup on
            # every new posting. Later attempts look the key up first.
            if not unit.first_attempt:
                stored = await unit.find_by_key(key)
                if stored is not None:
                    return replay(stored, fingerprint, key, unit, actor)
            transaction = await write(
                unit,
                header(
                    key,
                    fingerprint,
                    cmd.description,
                    cmd.metadata,
                    actor=actor,
                    action=audit.TRANSACTION_CREATE,
                    reach=(leg.account_id for leg in cmd.entries),
                    pending=cmd.pending,
                    timeout_seconds=cmd.timeout_seconds,
                ),
                cmd.entries,
                pending=cmd.pending,
            )
            return PostingResult(transaction, replayed=False)

        result = await self.store.run(work)
        return await answered(
            self.store,
            result,
            actor=actor,
            action=audit.TRANSACTION_CREATE,
            fingerprint=fingerprint,
        )

    async def reverse(
        self,
        transaction_id: str,
        cmd: ReversalRequest,
        key: IdempotencyKey,
        actor: Actor = DIRECT,
    ) -> PostingResult:
        """Append a transaction with every leg of the original swapped.

        The original is never changed. The reversal is subject to the same
        limit checks as any posting: it cannot overdraw a limited account.
        Raises TransactionNotFound, AlreadyReversed, LimitExceeded,
        IdempotencyKeyReused, MissingIdempotencyKey, AccountOutOfReach,
        RetriesExhausted, OutcomeUnknown.
        """
        self._check_key(key)
        free_text.check_metadata(cmd.metadata, cmd.description, self.limits)
        fingerprint = rules.fingerprint(f"reverse:{transaction_id}", cmd)

        async def work(unit: PostingUnit) -> PostingResult:
            found = await replay_or_target(unit, key, fingerprint, transaction_id, actor)
            if isinstance(found, PostingResult):
                return found
            original = found
            rules.check_reversible(
                original, original.pending and pending.is_overdue(original, await unit.now())
            )
            legs = rules.reversed_legs(
                Leg(e.account_id, e.direction, e.amount) for e in original.entries
            )
            description = cmd.description
            if description is None:
                description = f"reversal of {transaction_id}"
            transaction = await write(
                unit,
                header(
                    key,
                    fingerprint,
                    description,
                    cmd.metadata,
                    actor=actor,
                    action=audit.TRANSACTION_REVERSE,
                    target=transaction_id,
                    reach=(e.account_id for e in original.entries),
                    reverses=transaction_id,
                ),
                legs,
            )
            return PostingResult(transaction, replayed=False)

        result = await self.store.run(work)
        return await answered(
            self.store,
            result,
            actor=actor,
            action=audit.TRANSACTION_REVERSE,
            fingerprint=fingerprint,
            target=transaction_id,
        )

    async def get(
        self, transaction_id: str, *, stale: bool = False, actor: Actor = DIRECT
    ) -> Transaction:
        """Raises TransactionNotFound, for one outside the caller's reach
        too (a key limited to account prefixes reads only transactions
        whose every leg it reaches, and is not told the others exist).
        `stale` allows a slightly old snapshot."""
        transaction = await self.store.get_transaction(transaction_id, stale=stale)
        if transaction is None or not reach.sees(
            actor, [e.account_id for e in transaction.entries]
        ):
            raise errors.TransactionNotFound(
                f"no transaction {transaction_id!r}", transaction_id=transaction_id
            )
        return transaction

    async def post_pending(
        self,
        transaction_id: str,
        cmd: PostPendingRequest,
        key: IdempotencyKey,
        actor: Actor = DIRECT,
    ) -> PostingResult:
        """Post a pending transaction, in full or in part, releasing the rest.

        Raises TransactionNotFound, NotPending, AlreadyResolved, PendingExpired,
        InvalidResolution, LimitExceeded, IdempotencyKeyReused,
        MissingIdempotencyKey, RetriesExhausted, OutcomeUnknown.
        """
        return await self._resolve_asked(transaction_id, "posted", cmd, key, actor)

    async def void_pending(
        self,
        transaction_id: str,
        cmd: VoidRequest,
        key: IdempotencyKey,
        actor: Actor = DIRECT,
    ) -> PostingResult:
        """Release a pending transaction without posting anything.

        Raises TransactionNotFound, NotPending, AlreadyResolved, PendingExpired,
        IdempotencyKeyReused, MissingIdempotencyKey, RetriesExhausted,
        OutcomeUnknown.
        """
        return await self._resolve_asked(transaction_id, "voided", cmd, key, actor)

    async def _resolve_asked(
        self,
        transaction_id: str,
        resolution: str,
        cmd: PostPendingRequest | VoidRequest,
        key: IdempotencyKey,
        actor: Actor,
    ) -> PostingResult:
        """A resolution a caller asked for (not the sweeper's): its key and
        text checked, and a replay of it recorded like the original."""
        self._check_key(key)
        free_text.check_metadata(cmd.metadata, cmd.description, self.limits)
        fingerprint = rules.fingerprint(f"{_VERBS[resolution]}:{transaction_id}", cmd)
        result = await self._resolve(transaction_id, resolution, cmd, key, fingerprint, actor)
        return await answered(
            self.store,
            result,
            actor=actor,
            action=_RESOLUTION_ACTIONS[resolution],
            fingerprint=fingerprint,
            target=transaction_id,
        )

    async def expire_due(self, limit: int = 100) -> int:
        """Void every pending transaction whose timeout has passed; returns how
        many this call expired. Safe to run in many processes at once: each
        expiry is keyed by the pending transaction's id, and the database
        admits one resolution per pending transaction, so a racing sweeper or
        post finds the work done and moves on."""
        expired = 0
        due = await self.store.due_for_expiry(limit)
        # Sweepers in other processes see the same oldest rows; taking them
        # in a different order makes them collide less.
        random.shuffle(due)
        for transaction_id in due:
            key = IdempotencyKey("ledger-expiry", f"expire:{transaction_id}")
            try:
                result = await self._resolve(
                    transaction_id,
                    "expired",
                    VoidRequest(description="expired"),
                    key,
                    rules.fingerprint(f"expire:{transaction_id}", VoidRequest()),
                    EXPIRY,
                )
            except (errors.AlreadyResolved, errors.PendingExpired, errors.TransactionNotFound):
                continue
            if not result.replayed:
                expired += 1
        return expired

    async def _resolve(
        self,
        transaction_id: str,
        resolution: str,
        cmd: PostPendingRequest | VoidRequest,
        key: IdempotencyKey,
        fingerprint: str,
        actor: Actor,
    ) -> PostingResult:
        async def work(unit: PostingUnit) -> PostingResult:
            # The key is looked up before the pending transaction's state is
            # judged: a retry of a post that succeeded must get that post
            # back, not "already resolved".
            found = await replay_or_target(unit, key, fingerprint, transaction_id, actor)
            if isinstance(found, PostingResult):
                return found
            original = found
            pending.check_resolvable(original, resolution, await unit.now())
            held = [Leg(e.account_id, e.direction, e.amount) for e in original.entries]
            to_post: list[Leg] = []
            if isinstance(cmd, PostPendingRequest):
                to_post = rules.resolution_legs(held, [e.currency for e in original.entries], cmd)
            resolving = header(
                key,
                fingerprint,
                cmd.description,
                cmd.metadata,
                actor=actor,
                action=_RESOLUTION_ACTIONS[resolution],
                target=transaction_id,
                reach=(e.account_id for e in original.entries),
                resolves=transaction_id,
                resolution=resolution,
            )
            transaction = await write(unit, resolving, to_post, release=held)
            return PostingResult(transaction, replayed=False)

        return await self.store.run(work)

    def _check_key(self, key: IdempotencyKey) -> None:
        rules.check_idempotency_key(key, self.limits)
