"""Waiting for the event streams to grow: one poller per process reads where
the streams end while anyone waits (however many long polls, streams and
webhook deliverers are open), and none while no one does."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ledger.engine.events import Position

log = logging.getLogger(__name__)


def beyond(latest: Position | None, position: Position) -> bool:
    """Whether either stream has grown past `position`."""
    return latest is not None and (
        latest.sequence > position.sequence or latest.exception > position.exception
    )


class Tail:
    """Where the streams end as this process last saw it (None before the
    first read), and a wait for them to pass a place."""

    def __init__(self, read_head: Callable[[], Awaitable[Position]], poll_seconds: float) -> None:
        self.read_head = read_head
        self.poll_seconds = poll_seconds
        self.latest: Position | None = None
        self._moved = asyncio.Event()
        self._waiting = 0
        self._poller: asyncio.Task | None = None

    def passed(self, position: Position) -> bool:
        return beyond(self.latest, position)

    async def wait_past(self, position: Position, seconds: float) -> bool:
        """Wait up to `seconds` for either stream to grow past `position`;
        whether one did."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        self._waiting += 1
        try:
            if self._poller is None or self._poller.done():
                self._poller = asyncio.create_task(self._poll())
            while not self.passed(position):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                moved = self._moved
                try:
                    await asyncio.wait_for(moved.wait(), remaining)
                except TimeoutError:
                    return self.passed(position)
            return True
        finally:
            self._waiting -= 1

    async def _poll(self) -> None:
        while self._waiting > 0:
            try:
                latest = await self.read_head()
            except Exception:
                log.exception("reading where the event streams end failed")
                latest = self.latest
            if latest != self.latest:
                self.latest = latest
                moved, self._moved = self._moved, asyncio.Event()
                moved.set()
            await asyncio.sleep(self.poll_seconds)
