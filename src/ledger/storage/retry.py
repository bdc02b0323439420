"""The retry loop around one database transaction.

Why not `sqlalchemy_cockroachdb.run_transaction`: it drives a synchronous
Connection or Session, and this service is async end to end. It also retries
only 40001, while we must also retry deadlocks (40P01, PostgreSQL), connections
lost mid-transaction, and ambiguous commits (40003, or a connection lost during
COMMIT). So the loop is ours, with the same protocol: retry the whole
transaction from BEGIN.

An ambiguous commit is safe to retry because every posting carries its
idempotency key: the next attempt either finds the first attempt's posting
(and returns it) or writes it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from prometheus_client import Counter
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger.engine import errors
from ledger.storage.failures import Failure, classify

T = TypeVar("T")
log = logging.getLogger(__name__)

ATTEMPTS = Counter(
    "ledger_db_transaction_attempts",
    "Database transaction attempts by outcome",
    ["outcome"],
)


class KeyRace(Exception):
    """Two requests with one idempotency key inserted at once and ours lost.
    Retrying makes the next attempt find the winner's posting."""


class StatementsLost(Exception):
    """The connection no longer had the posting statements prepared on it
    (something sent DEALLOCATE ALL unseen). They are forgotten, and the next
    attempt prepares them again."""


class Attempt:
    """What one attempt knows of the attempts before it, and tells the next."""

    __slots__ = ("committing", "number", "unsure", "written", "wrote")

    def __init__(self, number: int, unsure: frozenset[str] = frozenset()) -> None:
        self.number = number
        # The transactions earlier attempts wrote before a commit whose
        # outcome is unknown: found now, they are this request's own.
        self.unsure = unsure
        # The transactions this attempt writes (their ids are made here).
        self.written: list[str] = []
        # Set by the work when it sends a write. An attempt that only read
        # cannot have committed anything, so its ambiguity does not count.
        self.wrote = False
        # Set by work that sends COMMIT itself (folded into its last
        # statement): a connection lost from then on leaves the outcome unknown.
        self.committing = False


class RetryPolicy:
    def __init__(self, attempts: int, base_seconds: float, cap_seconds: float) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.attempts = attempts
        self.base_seconds = base_seconds
        self.cap_seconds = cap_seconds

    def backoff(self, attempt: int) -> float:
        """Capped exponential backoff with full jitter (attempt counts from 1)."""
        ceiling = min(self.cap_seconds, self.base_seconds * (2 ** (attempt - 1)))
        return random.uniform(0, ceiling)


async def run_transaction(
    engine: AsyncEngine,
    policy: RetryPolicy,
    work: Callable[[AsyncConnection, Attempt], Awaitable[T]],
) -> T:
    """Run `work(connection, attempt)` in a transaction, retrying the
    whole transaction on retryable failures.

    Raises the engine's LedgerError that `work` raises (after rolling back),
    RetriesExhausted when every attempt conflicted, OutcomeUnknown when an
    attempt may have committed and no later attempt could find out.
    """
    after_ambiguous = False
    unsure: frozenset[str] = frozenset()
    last: BaseException | None = None
    failure_name = ""
    for attempt in range(1, policy.attempts + 1):
        during_commit = False
        current = Attempt(attempt, unsure)
        try:
            async with engine.connect() as conn:
                trans = await conn.begin()
                try:
                    result = await work(conn, current)
                except BaseException:
                    await _rollback_quietly(trans)
                    raise
                during_commit = True
                await trans.commit()
            ATTEMPTS.labels("committed").inc()
            return result
        except errors.LedgerError:
            ATTEMPTS.labels("refused").inc()
            raise
        except sa_exc.TimeoutError as exc:
            ATTEMPTS.labels("pool_timeout").inc()
            raise errors.Unavailable(
                "no database connection became free in time; nothing was written, retry with "
                "the same idempotency key"
            ) from exc
        except KeyRace as exc:
            failure_name, last = "key_race", exc
        except StatementsLost as exc:
            failure_name, last = "statements_lost", exc
        except (sa_exc.DBAPIError, OSError) as exc:
            failure = classify(exc, during_commit=during_commit or current.committing)
            if failure is Failure.FATAL:
                ATTEMPTS.labels("fatal").inc()
                raise
            if failure is Failure.AMBIGUOUS and current.wrote:
                after_ambiguous = True
                unsure |= frozenset(current.written)
            failure_name, last = failure.value, exc
        ATTEMPTS.labels(failure_name).inc()
        log.debug("attempt %d failed (%s): %s", attempt, failure_name, last)
        # A key race needs no backoff: the next attempt only reads the winner.
        # Nor do lost statements: nothing conflicted.
        if attempt < policy.attempts and failure_name not in ("key_race", "statements_lost"):
            await asyncio.sleep(policy.backoff(attempt))

    ATTEMPTS.labels("gave_up").inc()
    raise _gave_up(policy, failure_name, after_ambiguous) from last


def _gave_up(policy: RetryPolicy, failure_name: str, after_ambiguous: bool) -> errors.Unavailable:
    """What to answer once every attempt failed: the outcome is unknown if
    one that wrote may have committed; otherwise the last attempt's failure
    says whether the database was out of reach or the work kept conflicting."""
    if after_ambiguous:
        return errors.OutcomeUnknown(
            "the database could not confirm whether the posting committed; retry with the "
            "same idempotency key: it will either return the posting or write it once"
        )
    if failure_name == Failure.CONNECTION.value:
        # Not a conflict storm: an outage (or a failover longer than the retries).
        return errors.Unavailable(
            f"the database could not be reached ({policy.attempts} attempts); nothing was "
            "written, retry later with the same idempotency key",
            attempts=policy.attempts,
        )
    return errors.RetriesExhausted(
        f"the transaction conflicted with concurrent ones {policy.attempts} times in a row; "
        "nothing was written, retry with the same idempotency key",
        attempts=policy.attempts,
    )


async def _rollback_quietly(trans) -> None:
    # A lost connection cannot roll back; the server discards the transaction.
    with contextlib.suppress(sa_exc.DBAPIError, OSError, sa_exc.InvalidRequestError):
        await trans.rollback()
