"""Where a read was served from. Reads that feed no decision (stale reads,
statements, reports, search) may be served by a replica; the storage layer
says which served a request's read here, and the API turns it into the
`Ledger-Read-From` and `Ledger-Replica-Lag-Ms` headers. A context variable:
each request is its own task, so each sees only its own reads."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Literal, NamedTuple


class ReadSource(NamedTuple):
    server: Literal["replica", "primary"]
    # How far behind the primary the replica's data was (milliseconds).
    lag_ms: int | None = None


READ_FROM: ContextVar[ReadSource | None] = ContextVar("ledger_read_from", default=None)


def served_by(server: Literal["replica", "primary"], lag_ms: int | None = None) -> None:
    READ_FROM.set(ReadSource(server, lag_ms))
