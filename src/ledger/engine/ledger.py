"""The ledger: a container of its use cases, one per aggregate, and the
checks that read across them. Storage is reached only through
`ledger.engine.ports`."""

from __future__ import annotations

import msgspec

from ledger.engine.accounts import Accounts
from ledger.engine.audit_trail import AuditTrail
from ledger.engine.batch import Batches
from ledger.engine.event_feed import Events
from ledger.engine.journal import Journal
from ledger.engine.keys import Keys
from ledger.engine.limits import Limits
from ledger.engine.ports import Store
from ledger.engine.postings import Postings
from ledger.engine.reconciliation import Reconciliation
from ledger.engine.reports import Reports
from ledger.engine.verify import SampleCheck, VerifyReport, check_sample, judge
from ledger.engine.webhooks import Resolve, Webhooks, no_resolver


class Ledger:
    """The use cases, one per aggregate, each on its own port: `accounts`,
    `postings` (pending ones included), `batches`, `keys`, `audit`,
    `journal`, `events`, `webhooks`, `reconciliation`, `reports`; and the
    ledger-wide checks (`verify`, `verify_sample`, `ready`), which read
    across all of them."""

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
        self.accounts = Accounts(store, limits)
        self.postings = Postings(store, limits)
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
        self.reconciliation = Reconciliation(store, limits, self.postings.post)
        self.reports = Reports(store, limits)

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
