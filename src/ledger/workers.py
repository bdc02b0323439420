"""The background loops every service process runs. Each is safe in many
processes at once (the database admits each piece of work once) and keeps
no state of its own, so a process killed with -9 leaves nothing half done
that another round, here or elsewhere, does not finish."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

from prometheus_client import Counter, Gauge, Histogram

from ledger.engine import Deliverer, Ledger
from ledger.settings import Settings

log = logging.getLogger(__name__)


async def sweep_expired(ledger: Ledger, interval: float, batch: int) -> None:
    """Void pending transactions past their timeout, forever. A failed round
    (database away, say) is logged and the next round tries again."""
    while True:
        try:
            while await ledger.postings.expire_due(batch) >= batch:
                pass  # a full batch: more may be due at once
        except Exception:
            log.exception("expiry sweep failed; retrying in %.1f s", interval)
        await asyncio.sleep(interval)


async def compact_hot_accounts(ledger: Ledger, settings: Settings) -> None:
    """Fold hot accounts' deltas into snapshots, forever. It wakes a few
    times per `hot_compact_seconds`, so an account that reaches
    `hot_compact_deltas` is folded soon after."""
    interval = max(settings.hot_compact_seconds / 4, 0.05)
    while True:
        try:
            await ledger.accounts.compact_hot(
                min_deltas=settings.hot_compact_deltas,
                max_age_seconds=settings.hot_compact_seconds,
                grace_seconds=settings.hot_snapshot_grace_seconds,
                batch=settings.hot_compact_batch,
            )
        except Exception:
            log.exception("hot-account compaction failed; retrying in %.1f s", interval)
        await asyncio.sleep(interval)


SEALED = Counter(
    "ledger_journal_sealed_transactions",
    "Transactions this process sealed into the journal's blocks",
)
SEAL_FAILURES = Counter(
    "ledger_journal_seal_failures", "Sealing rounds of this process that failed"
)


async def seal_journal(ledger: Ledger, interval: float, max_transactions: int) -> None:
    """Seal committed transactions into blocks, forever: at once again
    after a full block, else after `interval` (with a little jitter, so that
    the sequencers of several processes seldom race for one block; the
    loser of a race writes nothing). A failed round (the database away)
    waits at least a second, so an outage is not logged five times a
    second."""
    while True:
        pause = interval
        try:
            while (sealed := await ledger.journal.seal(max_transactions)) >= max_transactions:
                SEALED.inc(sealed)  # a full block: more are waiting
            SEALED.inc(sealed)
        except Exception:
            SEAL_FAILURES.inc()
            pause = max(interval, 1.0)
            log.exception("sealing failed; retrying in %.1f s", pause)
        await asyncio.sleep(pause * random.uniform(0.75, 1.25))


WEBHOOK_ATTEMPTS = Counter(
    "ledger_webhook_attempts",
    "Webhook delivery attempts of this process, by outcome",
    ["outcome"],
)
WEBHOOK_LAG = Histogram(
    "ledger_webhook_delivery_lag_seconds",
    "From a transaction's commit to its event's acknowledged delivery",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
)


def _observe(outcome: str, lag: float | None) -> None:
    WEBHOOK_ATTEMPTS.labels(outcome).inc()
    if lag is not None:
        WEBHOOK_LAG.observe(lag)


async def deliver_webhooks(ledger: Ledger, settings: Settings) -> None:
    """Deliver events to the webhook endpoints this process holds the
    lease of, for ever (see `ledger.engine.delivery`)."""
    # Imported here, not with the module: aiohttp is a tenth of a second of
    # a service's start, and a service whose loops run in a child process
    # never sends a webhook itself.
    from ledger.outbound.webhook_client import WebhookClient

    client = WebhookClient(
        timeout_seconds=settings.webhook_timeout_seconds,
        allow_private=settings.webhook_allow_private,
    )
    deliverer = Deliverer(
        ledger.store, ledger.events, client.send, settings.delivery(), observe=_observe
    )
    try:
        await deliverer.run()
    finally:
        await client.close()


VERIFY_DRIFT = Gauge(
    "ledger_verify_drift_accounts",
    "Accounts whose cached balance the continuous verifier last found differing from the journal",
    multiprocess_mode="max",
)
VERIFY_SUCCESS = Gauge(
    "ledger_verify_last_success_timestamp_seconds",
    "When the continuous verifier last finished a round",
    multiprocess_mode="max",
)
VERIFY_RATE = Gauge(
    "ledger_verify_accounts_per_second",
    "Accounts the continuous verifier checked per second in its last round",
    multiprocess_mode="max",
)
VERIFY_CHECKED = Counter(
    "ledger_verify_accounts_checked", "Accounts the continuous verifier checked"
)


# Accounts this process's verifier found drifting and not clean since.
_DRIFTED: set[str] = set()


async def verify_continuously(ledger: Ledger, interval: float, sample: int) -> None:
    """Recompute a rolling sample of accounts from the journal, forever: each
    round the next `sample` accounts in id order, around and around, in a
    read-only snapshot. It writes nothing, so any number may run and a kill -9 leaves
    nothing behind. The drift gauge counts the accounts found differing and
    not found clean since (by any loop of this process)."""
    drifted = _DRIFTED
    after: str | None = None
    while True:
        try:
            began = time.perf_counter()
            check = await ledger.verify_sample(after, sample)
            drifted.difference_update(check.checked)
            drifted.update(check.drifted)
            if check.drifted:
                log.error("verifier: cached balances differ from the journal: %s", check.drifted)
            VERIFY_DRIFT.set(len(drifted))
            VERIFY_CHECKED.inc(len(check.checked))
            VERIFY_RATE.set(len(check.checked) / max(time.perf_counter() - began, 1e-6))
            VERIFY_SUCCESS.set_to_current_time()
            after = check.next_after
        except Exception:
            log.exception("verifier round failed; retrying in %.1f s", interval)
        await asyncio.sleep(interval * random.uniform(0.75, 1.25))


def start(ledger: Ledger, settings: Settings) -> list[asyncio.Task]:
    """The loops this process's settings turn on, started."""
    tasks = []
    if settings.expiry_sweep_seconds > 0:
        tasks.append(
            asyncio.create_task(
                _untraced(
                    sweep_expired(ledger, settings.expiry_sweep_seconds, settings.expiry_batch)
                )
            )
        )
    if settings.hot_compact_seconds > 0:
        tasks.append(asyncio.create_task(_untraced(compact_hot_accounts(ledger, settings))))
    if settings.seal_seconds > 0:
        tasks.append(
            asyncio.create_task(
                _untraced(seal_journal(ledger, settings.seal_seconds, settings.seal_max))
            )
        )
    if settings.webhook_claim_seconds > 0:
        tasks.append(asyncio.create_task(_untraced(deliver_webhooks(ledger, settings))))
    if settings.verify_seconds > 0:
        tasks.append(
            asyncio.create_task(
                _untraced(
                    verify_continuously(ledger, settings.verify_seconds, settings.verify_sample)
                )
            )
        )
    return tasks


async def stop(tasks: list[asyncio.Task]) -> None:
    """Cancel the loops `start` started and wait for them to end."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _untraced(loop) -> None:
    """Run a loop with OpenTelemetry's instrumentation suppressed in its
    task: each round of polling would otherwise be a trace of its own, a
    few a second in every process, burying the requests' traces."""
    try:
        from opentelemetry.instrumentation.utils import suppress_instrumentation
    except ImportError:  # tracing is not installed: nothing to suppress
        quiet = contextlib.nullcontext()
    else:
        quiet = suppress_instrumentation()
    with quiet:
        await loop
