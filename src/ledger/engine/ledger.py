"""The ledger's use cases: what a caller can ask of it, and in which order the
rules are applied. Storage is reached only through `ledger.engine.ports`; the
steps postings share are in `ledger.engine.posting`."""

from __future__ import annotations

from datetime import datetime

import msgspec

from ledger.engine import (
    access,
    account_rules,
    audit,
    errors,
    free_text,
    paging,
    pending,
    reach,
    rules,
)
from ledger.engine.access import DIRECT, Actor
from ledger.engine.accounts import AccountCases
from ledger.engine.audit_trail import AuditTrail
from ledger.engine.batch import Batches
from ledger.engine.event_feed import Events
from ledger.engine.journal import Journal
from ledger.engine.keys import Keys
from ledger.engine.limits import Limits
from ledger.engine.model import (
    Balance,
    IdempotencyKey,
    Leg,
    NewTransaction,
    Page,
    PendingTotals,
    PostingResult,
    ReversalRequest,
    Transaction,
)
from ledger.engine.pending_cases import PendingCases
from ledger.engine.ports import PostingUnit, Store
from ledger.engine.posting import answered, header, replay, replay_or_target, write
from ledger.engine.reconciliation import Reconciliation
from ledger.engine.reports import Reports
from ledger.engine.verify import SampleCheck, VerifyReport, check_sample, judge
from ledger.engine.webhooks import Resolve, Webhooks, no_resolver


class Ledger(AccountCases, PendingCases):
    """The accounts' use cases come from `AccountCases`, the pending
    transactions' from `PendingCases`; the API keys', the
    audit trail's, the sealed journal's, the events' and the webhooks' are
    `keys`, `audit`, `journal`, `events` and `webhooks`; batches of postings
    are `batches`; reconciliation against statements is `reconciliation`;
    statements and the trial balance are `reports`."""

    def __init__(
        self,
        store: Store,
        limits: Limits,
        *,
        key_cache_seconds: float = 5.0,
        proof_max_blocks: int = 1000,
        events_poll_seconds: float = 0.1,
        resolve: Resolve = no_resolver,
        webhook_allow_private: bool = False,
        rotation_overlap_seconds: float = 86_400.0,
    ) -> None:
        self.store = store
        self.limits = limits
        self.keys = Keys(store, limits, key_cache_seconds)
        self.audit = AuditTrail(store, limits)
        self.batches = Batches(store, limits)
        self.journal = Journal(store, limits, proof_max_blocks=proof_max_blocks)
        # A stream or long poll rechecks its key twice per cache period, so
        # it ends within one and a half of them after a revocation.
        self.events = Events(
            store,
            limits,
            poll_seconds=events_poll_seconds,
            key_live=self.keys.still_live,
            recheck_seconds=key_cache_seconds / 2,
        )
        self.webhooks = Webhooks(
            store,
            limits,
            resolve,
            allow_private=webhook_allow_private,
            rotation_overlap_seconds=rotation_overlap_seconds,
        )
        self.reconciliation = Reconciliation(store, limits, self.post_transaction)
        self.reports = Reports(store, limits)

    # --- postings ----------------------------------------------------------------

    async def post_transaction(
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

    async def reverse_transaction(
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

    async def get_transaction(
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

    # --- balances and history -----------------------------------------------------

    async def balance(
        self,
        account_id: str,
        as_of: datetime | None = None,
        *,
        stale: bool = False,
        actor: Actor = DIRECT,
    ) -> Balance:
        """The account's posted, pending and available balances now (from the
        cached row) or as of a time (summed from the journal). `stale` allows
        a slightly old snapshot, for display only: no rule of the ledger reads
        balances this way. Raises AccountNotFound, AccountOutOfReach."""
        access.check_reach(actor, [account_id])
        if not account_rules.known_account_id(account_id):
            raise errors.AccountNotFound(f"no account {account_id!r}", account_id=account_id)
        if as_of is None:
            found = await self.store.cached_totals(account_id, stale=stale)
            if found is None:
                raise errors.AccountNotFound(f"no account {account_id!r}", account_id=account_id)
            state, read_at = found
        else:
            now = await self.store.now()
            if as_of > now:
                raise errors.InvalidValue(
                    f"as_of {as_of.isoformat()} is after the database's current time "
                    f"{now.isoformat()}: no balance is known there yet",
                    field="as_of",
                )
            state = await self.store.journal_totals(account_id, as_of)
            if state is None:
                raise errors.AccountNotFound(f"no account {account_id!r}", account_id=account_id)
            read_at = as_of
        account = state.account
        posted = rules.totals(account.normal_side, state.posted_debits, state.posted_credits)
        pending = PendingTotals(state.pending_debits, state.pending_credits)
        return Balance(
            account_id=account.id,
            currency=account.currency,
            scale=account.scale,
            normal_side=account.normal_side,
            as_of=read_at,
            posted=posted,
            pending=pending,
            available=rules.available(account.normal_side, posted, pending),
        )

    async def account_entries(
        self,
        account_id: str,
        cursor: str | None,
        limit: int | None = None,
        *,
        stale: bool = False,
        actor: Actor = DIRECT,
    ) -> Page:
        """The account's entries, oldest first. Raises AccountNotFound,
        InvalidCursor, InvalidValue, AccountOutOfReach."""
        limit = self._page_size(limit)
        after = paging.decode_cursor(cursor)
        await self.get_account(account_id, actor)
        items = await self.store.account_entries(account_id, after, limit + 1, stale=stale)
        return paging.page(items, limit, lambda e: e.entry_id)

    async def verify_sample(self, after: str | None, limit: int) -> SampleCheck:
        """The next `limit` accounts after `after`: their cached totals
        against their journal sums, in one read-only snapshot."""
        return check_sample(await self.store.account_sums(after, limit), limit)

    async def ready(self) -> bool:
        """Whether the database answers."""
        return await self.store.ping()

    async def verify(self, since_block: int = 1) -> VerifyReport:
        """The balances, the transactions and the books against the
        journal, and the sealed journal's chain from `since_block` on."""
        report = judge(await self.store.journal_facts())
        sealed = await self.journal.verify(since_block)
        return msgspec.structs.replace(report, ok=report.ok and sealed.ok, journal=sealed)
