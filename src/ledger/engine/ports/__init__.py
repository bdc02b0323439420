"""What the engine needs from storage, as Protocols: one port per aggregate.
Storage implements them; the engine never imports storage. Each use case
takes only its own port; `Store` is all of them, what `Ledger` is built on
and what `ledger.storage.SqlStore` provides."""

from __future__ import annotations

from typing import Protocol

from ledger.engine.ports.accounts import AccountStore
from ledger.engine.ports.audit import AuditStore
from ledger.engine.ports.checks import CheckStore
from ledger.engine.ports.events import EventStore
from ledger.engine.ports.journal import BuildBlock, JournalStore
from ledger.engine.ports.keys import KeyStore
from ledger.engine.ports.posting import PostingStore, PostingUnit
from ledger.engine.ports.reconciliation import ReconciliationCases, ReconciliationStore
from ledger.engine.ports.reports import ReportStore
from ledger.engine.ports.webhooks import WebhookStore

__all__ = [
    "AccountStore",
    "AuditStore",
    "BuildBlock",
    "CheckStore",
    "EventStore",
    "JournalStore",
    "KeyStore",
    "PostingStore",
    "PostingUnit",
    "ReconciliationCases",
    "ReconciliationStore",
    "ReportStore",
    "Store",
    "WebhookStore",
]


class Store(
    PostingStore,
    AccountStore,
    CheckStore,
    JournalStore,
    EventStore,
    WebhookStore,
    KeyStore,
    AuditStore,
    ReconciliationStore,
    ReportStore,
    Protocol,
):
    """Every port: the whole of storage, as the container `Ledger` holds it."""
