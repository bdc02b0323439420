"""HTTP handlers for events (scope `events:read`): the feed to pull (with a
long poll) and the Server-Sent Events stream to follow. Both read the
sealed journal; see `ledger.engine.events`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated

import msgspec
from litestar import Request, Router, get
from litestar.params import FromQuery, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from ledger.api import problems
from ledger.api import request as req
from ledger.api.access import requires
from ledger.engine import errors
from ledger.engine.access import EVENTS_READ
from ledger.engine.events import EventPage
from ledger.settings import Settings

LAST_EVENT_ID = "Last-Event-ID"
# How long a client waits before it reconnects once a stream has ended
# (after `LEDGER_EVENTS_STREAM_SECONDS`).
RETRY_MS = 1000


@get("/events", tags=["events"], **requires(EVENTS_READ))
async def list_events(
    request: Request,
    ledger: req.LedgerDep,
    after: Annotated[str | None, QueryParameter(description="the cursor to continue after")] = None,
    limit: FromQuery[int | None] = None,
    types: Annotated[
        str | None,
        QueryParameter(description="comma-separated event types; absent: every type"),
    ] = None,
    account_id: FromQuery[str | None] = None,
    wait: Annotated[
        float | None,
        QueryParameter(description="seconds (up to 30) to wait for an event when none is there"),
    ] = None,
) -> EventPage:
    """Committed transactions and reconciliation exceptions as events:
    after the `after` cursor (absent: from the first), of the `types` asked
    for, about `account_id` (a leg on it; a reconciliation source of it).
    Each event's `data` is the transaction as it was when it committed, or
    the exception as a run found it (`reconciliation.exception`: opened, or
    found again with a higher severity; these need `reconciliation:read`
    too, and are left out for a key without it). The two streams are merged
    by time; each keeps its own order (`sequence`). Continue with the
    page's `cursor` (it moves on even when nothing matched). With `wait`, a
    long poll: it answers as soon as there is an event, or empty when the
    wait is over. A transaction appears about a second after it commits,
    once it is sealed into the journal; an exception as soon as its run
    commits; what rolled back never does."""
    return await ledger.events.feed(
        after,
        limit=limit,
        types=types,
        account_id=account_id,
        wait=wait,
        actor=req.actor(request),
    )


@get(
    "/events/stream",
    tags=["events"],
    media_type="text/event-stream",
    **requires(EVENTS_READ),
)
async def stream_events(
    request: Request,
    ledger: req.LedgerDep,
    settings: req.SettingsDep,
    after: Annotated[str | None, QueryParameter(description="the cursor to continue after")] = None,
    types: Annotated[
        str | None,
        QueryParameter(description="comma-separated event types; absent: every type"),
    ] = None,
    account_id: FromQuery[str | None] = None,
) -> ServerSentEvent:
    """The events as Server-Sent Events, for as long as the connection
    lasts: each message's `event` is the event's type, its `data` the
    event's JSON, its `id` the cursor after it. Reconnect with the
    `Last-Event-ID` header (EventSource does) to get exactly the events
    after the last one received. A comment line is sent when the stream
    has been quiet for `LEDGER_EVENTS_HEARTBEAT_SECONDS`, to keep proxies
    from closing it; the stream ends after `LEDGER_EVENTS_STREAM_SECONDS`
    (five minutes), for the client to resume."""
    cursor = request.headers.get(LAST_EVENT_ID) or after
    actor = req.actor(request)
    ledger.events.check_stream(cursor, types, account_id, actor)
    ends = time.monotonic() + settings.events_stream_seconds
    state = request.app.state

    def stopping() -> bool:
        return getattr(state, "draining", False) or time.monotonic() >= ends

    async def messages() -> AsyncIterator[ServerSentEventMessage]:
        yield ServerSentEventMessage(data=None, retry=RETRY_MS, comment="ledger events")
        async for event in ledger.events.stream(
            cursor,
            types=types,
            account_id=account_id,
            actor=actor,
            heartbeat_seconds=settings.events_heartbeat_seconds,
            stopping=stopping,
        ):
            if event is None:
                yield ServerSentEventMessage(data=None, comment="heartbeat")
                continue
            yield ServerSentEventMessage(
                data=msgspec.json.encode(event).decode(), event=event.type, id=event.cursor
            )

    async def until_revoked() -> AsyncIterator[ServerSentEventMessage]:
        # A key revoked while its stream is open ends the stream with a last
        # message naming the problem, so a client knows not to reconnect.
        try:
            async for message in messages():
                yield message
        except errors.Unauthenticated as exc:
            problem = problems.error_body(exc, request.url.path)
            yield ServerSentEventMessage(data=msgspec.json.encode(problem).decode(), event="error")

    return ServerSentEvent(until_revoked(), headers={"Cache-Control": "no-store"})


def router(settings: Settings) -> Router:
    """The events' routes."""
    return Router(path="/", route_handlers=[list_events, stream_events])
