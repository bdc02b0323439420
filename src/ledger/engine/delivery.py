"""Delivering events to webhook endpoints: at least once, in sequence order
per endpoint, from every service process at once without two of them
serving one endpoint.

Each endpoint has a lease in the database. A process's deliverer claims
endpoints whose lease is free or expired, and serves each claimed one in a
task of its own: it reads the events after the endpoint's cursor (the
sealed journal, `ledger.engine.events`), sends them one at a time, and
retries one until the receiver acknowledges it with a 2xx before it sends
the next. Progress (the cursor, the attempts, the failure state) is written
with the lease's renewal, a few times a second while events flow, and only
by the lease's holder of the endpoint's current generation. A process
killed with -9 stops renewing; its leases expire and another process takes
over from the last cursor written: events after it are sent again, under
the same `webhook-id`, which is what at least once means. (Even two
deliverers serving one endpoint at once, one of them not yet knowing it
lost the lease, cannot make an event arrive for the first time before an
earlier one: each sends in sequence order.)

A receiver that fails is retried with capped exponential backoff and
jitter; one that answers 410 Gone, or has failed for longer than
`disable_after_seconds`, is disabled, with the reason on the endpoint. A
replay turns it on again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import msgspec

from ledger.engine import events as ev
from ledger.engine.access import Actor
from ledger.engine.webhook_model import (
    Delivery,
    DeliverySettings,
    Progress,
    Send,
    Sent,
    StoredWebhook,
    backoff_seconds,
    sign,
)

if TYPE_CHECKING:
    from ledger.engine.event_feed import Events
    from ledger.engine.ports import WebhookStore

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 500
USER_AGENT = "ledger-webhooks/1"


class LostLease(Exception):
    """The endpoint is no longer this deliverer's: its lease went to another
    process, or an operator changed, disabled or deleted it."""


def _noop(outcome: str, lag: float | None) -> None:
    pass


class Deliverer:
    def __init__(
        self,
        store: WebhookStore,
        events: Events,
        send: Send,
        settings: DeliverySettings,
        *,
        owner: str | None = None,
        observe: Callable[[str, float | None], None] = _noop,
    ) -> None:
        self.store = store
        self.events = events
        self.send = send
        self.settings = settings
        # The host and process id tell an operator (and the kill -9 test)
        # which process holds a lease.
        self.owner = owner or f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.observe = observe
        self.serving: dict[str, asyncio.Task] = {}

    async def run(self) -> None:
        """Claim endpoints and serve them, for ever. Cancelled, it stops
        serving and gives its leases back, so another process takes over at
        once instead of after the lease time."""
        s = self.settings
        pruned = 0.0
        try:
            while True:
                for webhook_id, task in list(self.serving.items()):
                    if task.done():
                        del self.serving[webhook_id]
                await self._claim()
                if time.monotonic() - pruned >= s.prune_seconds:
                    pruned = time.monotonic()
                    await self._prune()
                await asyncio.sleep(s.claim_seconds * random.uniform(0.75, 1.25))
        finally:
            await self._stop()

    async def _claim(self) -> None:
        room = self.settings.max_endpoints - len(self.serving)
        if room <= 0:
            return
        try:
            claimed = await self.store.claim_webhooks(
                self.owner, self.settings.lease_seconds, room, list(self.serving)
            )
        except Exception:
            log.exception("claiming webhook endpoints failed")
            return
        for stored in claimed:
            webhook_id = stored.webhook.id
            self.serving[webhook_id] = asyncio.create_task(self.serve(stored))

    async def _prune(self) -> None:
        age = timedelta(seconds=self.settings.retention_seconds)
        for webhook_id in list(self.serving):
            try:
                await self.store.prune_deliveries(webhook_id, age)
            except Exception:
                log.exception("pruning the delivery log of %s failed", webhook_id)

    async def _stop(self) -> None:
        tasks = list(self.serving.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for webhook_id in list(self.serving):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.store.release_webhook(self.owner, webhook_id), 2.0)
        self.serving.clear()

    # --- one endpoint ---------------------------------------------------------------

    async def serve(self, stored: StoredWebhook) -> None:
        """Deliver to one endpoint until its lease is lost or it is
        disabled. A failure to write progress (the database away) ends the
        task too: the claim loop takes the endpoint up again from the last
        cursor written."""
        webhook = stored.webhook
        served = _Served(
            stored,
            Progress(
                position=ev.Position(stored.block, stored.sequence, stored.exception),
                failing_since=webhook.failing_since,
                last_error=webhook.last_error,
                delivered_at=webhook.delivered_at,
            ),
        )
        heartbeat = asyncio.create_task(self._heartbeat(served))
        try:
            await self._deliver_all(served)
        except LostLease:
            return
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._flush(served), 2.0)
            raise
        except Exception:
            log.exception("delivering to webhook %s failed; it will be taken up again", webhook.id)
        finally:
            heartbeat.cancel()

    async def _deliver_all(self, served: _Served) -> None:
        webhook = served.stored.webhook
        types = None if set(webhook.event_types) >= set(ev.EVENT_TYPES) else webhook.event_types
        where = ev.EventFilter(tuple(types) if types is not None else None)
        actor = Actor(
            request_id=f"system:webhook:{webhook.id}",
            client_id=served.stored.client_id,
            key_name="system:webhook",
            accounts=tuple(webhook.accounts) if webhook.accounts is not None else None,
        )
        progress = served.progress
        while True:
            served.check()
            found, reached = await self.events.read(
                progress.position, where, self.settings.batch, actor
            )
            for event in found:
                await self._deliver(served, event)
            progress.position = reached
            idle = not found
            # While events flow, progress is written every flush_seconds
            # (what a takeover would send again), and at once when caught
            # up; the heartbeat keeps the lease meanwhile.
            since = time.monotonic() - served.flushed
            if progress.attempts and (idle or since >= self.settings.flush_seconds):
                await self._flush(served)
            if idle:  # read again once more is sealed, not before
                tail = self.events.tail
                while not await tail.wait_past(reached, self.settings.flush_seconds):
                    served.check()
                # A change made while the endpoint was quiet (a rotated
                # secret, above all) is seen before the next delivery: the
                # write finds the endpoint's new generation, the lease is
                # lost, and the endpoint is taken up again as it now is.
                await self._flush(served)

    async def _heartbeat(self, served: _Served) -> None:
        """Renew the lease every third of its time, whatever the deliveries
        are doing (a slow receiver, a long backoff), so that only a dead
        process loses it; mark it lost when it was."""
        while True:
            await asyncio.sleep(self.settings.lease_seconds / 3)
            try:
                await self._flush(served)
            except LostLease:
                return
            except Exception:
                log.exception("renewing the lease of webhook %s failed", served.stored.webhook.id)

    async def _deliver(self, served: _Served, event: ev.AnyEvent) -> None:
        """Send `event` until a 2xx acknowledges it. Raises LostLease (also
        when the endpoint was disabled here)."""
        s = self.settings
        stored, progress = served.stored, served.progress
        body = msgspec.json.encode(event)
        attempt = 0
        while True:
            served.check()
            now = datetime.now(UTC)
            headers = {
                "content-type": "application/json",
                "user-agent": USER_AGENT,
                "webhook-id": event.id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": sign(_secrets(stored, now), event.id, now, body),
            }
            sent = await self.send(stored.webhook.url, headers, body)
            attempt += 1
            outcome = _outcome(sent.status)
            progress.attempts.append(_attempt(event, attempt, now, outcome, sent))
            lag = (datetime.now(UTC) - event.occurred_at).total_seconds()
            self.observe(outcome, lag if outcome == "delivered" else None)
            if outcome == "delivered":
                progress.position = ev.decode_cursor(event.cursor)
                progress.failing_since = None
                progress.delivered_at = now
                if len(progress.attempts) >= s.batch:
                    await self._flush(served)
                return
            progress.failing_since = progress.failing_since or now
            progress.last_error = _describe(sent)[:MAX_ERROR_CHARS]
            if outcome == "gone":
                progress.disable_reason = "the receiver answered 410 Gone"
            elif (now - progress.failing_since).total_seconds() >= s.disable_after_seconds:
                progress.disable_reason = (
                    f"failing since {progress.failing_since.isoformat()} "
                    f"(longer than {s.disable_after_seconds:g} s): {progress.last_error}"
                )
            await self._flush(served)
            if progress.disable_reason is not None:
                raise LostLease()
            pause = backoff_seconds(
                attempt - 1, s.backoff_base_seconds, s.backoff_cap_seconds, random.random()
            )
            deadline = time.monotonic() + pause
            while (left := deadline - time.monotonic()) > 0:
                served.check()
                await asyncio.sleep(min(left, 1.0))

    async def _flush(self, served: _Served) -> None:
        """Write the progress and renew the lease, one writer at a time.
        Raises LostLease (and marks it lost)."""
        async with served.lock:
            served.check()
            progress = served.progress
            attempts, progress.attempts = progress.attempts, []
            try:
                written = await self.store.report_progress(
                    self.owner,
                    served.stored.webhook.id,
                    served.stored.generation,
                    msgspec.structs.replace(progress, attempts=attempts),
                    self.settings.lease_seconds,
                )
            except BaseException:
                progress.attempts[:0] = attempts  # not written: try them again
                raise
            served.flushed = time.monotonic()
            if not written:
                served.lost = True
                raise LostLease()


class _Served:
    """An endpoint this deliverer holds: where its delivery stands, and a
    lock that keeps its writes (the deliveries' and the heartbeat's) one at
    a time."""

    def __init__(self, stored: StoredWebhook, progress: Progress) -> None:
        self.stored = stored
        self.progress = progress
        self.lock = asyncio.Lock()
        self.flushed = time.monotonic()
        self.lost = False

    def check(self) -> None:
        """Raises LostLease once a write found the lease gone."""
        if self.lost:
            raise LostLease()


def _attempt(event: ev.AnyEvent, attempt: int, now: datetime, outcome: str, sent: Sent) -> Delivery:
    return Delivery(
        id=str(uuid.uuid4()),
        event_id=event.id,
        sequence=event.sequence,
        attempt=attempt,
        attempted_at=now,
        outcome=outcome,  # type: ignore[arg-type]
        status_code=sent.status,
        error=(sent.error or None) and sent.error[:MAX_ERROR_CHARS],
        duration_ms=sent.duration_ms,
    )


def _secrets(stored: StoredWebhook, now: datetime) -> list[str]:
    until = stored.webhook.previous_secret_until
    if stored.previous_secret and until is not None and now < until:
        return [stored.secret, stored.previous_secret]
    return [stored.secret]


def _outcome(status: int | None) -> str:
    if status is not None and 200 <= status < 300:
        return "delivered"
    if status == 410:
        return "gone"
    return "failed"


def _describe(sent: Sent) -> str:
    if sent.status is None:
        return sent.error or "no answer"
    detail = f": {sent.error}" if sent.error else ""
    return f"HTTP {sent.status}{detail}"
