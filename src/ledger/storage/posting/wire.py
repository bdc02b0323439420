"""How a posting's statements travel to the database: two small classes, one
per wire path, chosen once per store (`dialect.batches_postings`).

- `FourMessages` (CockroachDB, and PostgreSQL in the tests): BEGIN, each
  statement as it comes, COMMIT, through psycopg's extended protocol.
- `TwoMessages` (PostgreSQL): server-side prepared statements (SQL PREPARE,
  once per connection) run through the simple query protocol, BEGIN folded
  into the first message and COMMIT into the last; the writes after the
  engine's checks are held back and go with COMMIT.

Both run the statements straight on psycopg rather than through SQLAlchemy's
execution path: profiles under load showed that SQLAlchemy compiled the
multi-row VALUES statements on every execution (their cache key leaves the
rows out, so its compiled cache never hit), and its execution context and
greenlet hop cost more per statement than psycopg's own work. The statements
are still built with Core, once. Errors come back as SQLAlchemy's, so the
retry loop and the constraint checks see no difference.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

import msgspec
import psycopg
from psycopg.rows import namedtuple_row
from psycopg.types.json import Jsonb
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger.engine import errors
from ledger.storage import failures
from ledger.storage.retry import Attempt, StatementsLost

Build = Callable[[], Any]  # makes the Core statement, called once per shape

_DRIVER_SQL: dict[tuple, str] = {}


async def run_on_driver(
    conn: AsyncConnection, key: tuple, build: Callable[[], Any], params: dict, *, rows=False
) -> list | None:
    """Run a posting statement straight on psycopg, from its SQL text
    compiled once per dialect (`build()` makes the Core statement; `key`
    names it and its size), with psycopg's parameters and prepared
    statements. A lost connection is invalidated so the pool drops it."""
    dialect_obj = conn.dialect
    cache_key = (type(dialect_obj), *key)
    sql = _DRIVER_SQL.get(cache_key)
    if sql is None:
        sql = _DRIVER_SQL[cache_key] = str(build().compile(dialect=dialect_obj))
    raw = (await conn.get_raw_connection()).driver_connection
    try:
        async with raw.cursor(row_factory=namedtuple_row) as cursor:
            await cursor.execute(sql, params)
            return await cursor.fetchall() if rows else None
    except psycopg.Error as exc:
        raise await _sa_error(conn, raw, sql, params, exc) from exc


async def _sa_error(
    conn: AsyncConnection, raw: psycopg.AsyncConnection, sql: str, params: Any, exc: psycopg.Error
) -> sa_exc.DBAPIError:
    """A psycopg error as SQLAlchemy's. A conflict (40001 is an
    OperationalError too) leaves the connection healthy; only a lost one is
    invalidated, so the pool drops it."""
    lost = raw.closed or failures.connection_lost(exc)
    if lost:
        await conn.invalidate()
    return sa_exc.DBAPIError.instance(sql, params, exc, psycopg.Error, connection_invalidated=lost)


class _Prepared(NamedTuple):
    """A posting statement as a server-side prepared statement (`TwoMessages`)."""

    name: str
    prepare: str  # PREPARE <name> AS <the statement with $n parameters>
    order: tuple[str, ...]  # the parameters' names, in $n order
    execute: str  # EXECUTE <name>(, followed by the literals and )


_PREPARED: dict[tuple, _Prepared] = {}


def _prepared(conn: AsyncConnection, key: tuple, build: Callable[[], Any]) -> _Prepared:
    """The statement `build()` makes, compiled once per dialect with
    numbered parameters, under a name made of `key`."""
    cache_key = (type(conn.dialect), *key)
    found = _PREPARED.get(cache_key)
    if found is None:
        compiled = build().compile(dialect=type(conn.dialect)(paramstyle="numeric_dollar"))
        order = tuple(compiled.positiontup or ())
        name = "ledger_" + "_".join(str(part) for part in key)
        found = _PREPARED[cache_key] = _Prepared(
            name,
            f"PREPARE {name} AS {compiled.string}",
            order,
            f"EXECUTE {name}(",
        )
    return found


_BEGIN = "BEGIN ISOLATION LEVEL SERIALIZABLE"
_BEGIN_TO_WAIT = "BEGIN ISOLATION LEVEL READ COMMITTED"


def _literal(value: Any, escape: Callable[[bytes], bytes]) -> str:
    """`value` as an SQL literal for an EXECUTE argument (the prepared
    statement's parameter types cast it). Text goes through libpq's
    PQescapeLiteral; the other types the posting statements take render as
    themselves. psycopg's client-side binding does the same with a dumper
    lookup per value, which profiling showed cost about a tenth of a
    service's CPU on the posting path."""
    kind = type(value)
    if kind is str:
        if "\x00" in value:
            raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        return escape(value.encode()).decode()
    if value is None:
        return "NULL"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is uuid.UUID:
        return f"'{value}'"
    if kind is datetime:
        if value.tzinfo is None:
            raise TypeError("naive datetime in a posting statement")
        return f"'{value.isoformat()}'"
    if kind is Jsonb:
        return _literal(msgspec.json.encode(value.obj).decode(), escape)
    if kind is list:
        return _literal("{" + ",".join([_element(v) for v in value]) + "}", escape)
    raise TypeError(f"no SQL literal for {kind.__name__}")


def _element(value: Any) -> str:
    """`value` as an element of an array's text form (a batch's rows travel
    as one array per column; the statement's cast gives the type)."""
    kind = type(value)
    if value is None:
        return "NULL"
    if kind is bool:
        return "t" if value else "f"
    if kind is int:
        return str(value)
    if kind is str:
        text = value
    elif kind is uuid.UUID:
        text = str(value)
    elif kind is datetime:
        if value.tzinfo is None:
            raise TypeError("naive datetime in a posting statement")
        text = value.isoformat()
    else:
        raise TypeError(f"no SQL array element for {kind.__name__}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_PREPARED_KEY = "ledger_prepared"  # in the pool's info of each connection
_PREPARED_NAMES = "SELECT name FROM pg_prepared_statements WHERE name LIKE 'ledger\\_%'"


def forget_prepared_on_rollback(engine: AsyncEngine) -> None:
    """psycopg answers ROLLBACK, on a connection where it has prepared
    statements of its own, with DEALLOCATE ALL, which drops the posting
    statements as well. So whenever a transaction is about to be rolled
    back, by the retry loop or by the pool's reset on return, the connection
    forgets which posting statements it had; the next posting prepares them
    again (one round trip, after a conflict or a refusal only)."""

    def forget(raw: Any, info: dict) -> None:
        if raw is not None and raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            info.pop(_PREPARED_KEY, None)

    @event.listens_for(engine.sync_engine, "rollback")
    def _rolling_back(conn) -> None:
        try:
            fairy = conn.connection
        except sa_exc.SQLAlchemyError:
            return  # closed or invalidated: its statements go with it
        forget(fairy.driver_connection, fairy.info)

    @event.listens_for(engine.sync_engine.pool, "reset")
    def _resetting(_dbapi_connection, record, _state) -> None:
        forget(record.driver_connection, record.info)


def _raise_overflow(exc: sa_exc.DBAPIError) -> None:
    """A running total past its column's range is the client's refusal."""
    if failures.is_numeric_overflow(exc):
        raise errors.BalanceOverflow(
            "the posting would overflow an account's running totals"
        ) from exc


class FourMessages:
    """BEGIN, each statement when it comes, COMMIT (SQLAlchemy's): the path
    CockroachDB takes. The dialect's `posting_settings` go first."""

    def __init__(self, conn: AsyncConnection, attempt: Attempt, settings: list[str]) -> None:
        self.conn = conn
        self.attempt = attempt
        self.settings = settings

    async def open(
        self, key: tuple, build: Build, params: dict, *, wait_first: bool = False
    ) -> list:
        """`wait_first` has no use here: CockroachDB's locking read waits
        inside the transaction and moves its timestamp past the holder."""
        await self.before_sqlalchemy()
        rows = await run_on_driver(self.conn, key, build, params, rows=True)
        assert rows is not None
        return rows

    async def write(self, key: tuple, build: Build, params: dict) -> None:
        await self.before_sqlalchemy()
        try:
            await run_on_driver(self.conn, key, build, params)
        except sa_exc.DBAPIError as exc:
            _raise_overflow(exc)
            raise

    async def before_sqlalchemy(self) -> None:
        """Nothing is held: statements go in the order they come, after the
        settings (sent once)."""
        settings, self.settings = self.settings, []
        for statement in settings:
            await self.conn.exec_driver_sql(statement)

    async def finish(self) -> None:
        """Nothing is held; the retry loop sends COMMIT."""


class TwoMessages:
    """`BEGIN; EXECUTE open(...)`, the engine's checks, then the held writes
    and COMMIT in one message, on a connection in autocommit mode. A
    statement sent through SQLAlchemy meanwhile (a lookup on a later
    attempt, the clock) first begins the transaction and sends what is held
    (`before_sqlalchemy`), so the order of statements is the engine's."""

    def __init__(self, conn: AsyncConnection, attempt: Attempt, settings: list[str]) -> None:
        self.conn = conn
        self.attempt = attempt
        self.settings = settings
        self.begun = False
        self.held: list[tuple[_Prepared, dict]] = []
        self._raw: psycopg.AsyncConnection | None = None

    async def open(
        self, key: tuple, build: Build, params: dict, *, wait_first: bool = False
    ) -> list:
        """The locking read that opens the transaction. With `wait_first`
        (a batch: hundreds of rows, often some locked by another batch),
        the same read runs first in a READ COMMITTED transaction rolled back
        at once, in the same message: it waits for whoever holds the rows.
        Under SERIALIZABLE the snapshot is taken before a lock wait, so
        waiting there means failing with "could not serialize access due
        to concurrent update" once the holder commits; waited for first,
        the real read mostly finds the rows free, with a snapshot that
        already sees the holder's commit."""
        statement = (_prepared(self.conn, key, build), params)
        rows = await self._send(statement, rows=True, wait_first=wait_first and not self.begun)
        assert rows is not None
        return rows

    async def write(self, key: tuple, build: Build, params: dict) -> None:
        """Held for the COMMIT message (`finish`); an overflow is refused there."""
        self.held.append((_prepared(self.conn, key, build), params))

    async def before_sqlalchemy(self) -> None:
        if not self.begun or self.held:
            await self._send()

    async def finish(self) -> None:
        """The held writes and COMMIT, in one message."""
        if not (self.begun or self.held):
            return
        try:
            await self._send(commit=True)
        except sa_exc.DBAPIError as exc:
            _raise_overflow(exc)
            raise

    async def _send(
        self,
        statement: tuple[_Prepared, dict] | None = None,
        *,
        commit=False,
        rows=False,
        wait_first=False,
    ) -> list | None:
        """One message: with `wait_first`, `statement` in a READ COMMITTED
        transaction rolled back; BEGIN unless sent already, the held writes,
        `statement`, COMMIT when `commit`. Returns `statement`'s rows when
        `rows`."""
        if self._raw is None:
            self._raw = (await self.conn.get_raw_connection()).driver_connection
        raw = self._raw
        escape = psycopg.pq.Escaping(raw.pgconn).escape_literal
        todo = [*self.held, statement] if statement is not None else self.held
        self.held = []
        executes = [await self._execute(raw, p, escape) for p in todo]
        parts = []
        if wait_first:
            # The settings too: a plan the wait leaves in the statement's
            # cache must be the one the real read would make.
            parts += [_BEGIN_TO_WAIT, *self.settings, executes[-1], "ROLLBACK"]
        if not self.begun:
            parts += [_BEGIN, *self.settings]
        parts += executes
        if commit:
            parts.append("COMMIT")
            self.attempt.committing = True
        self.begun = True
        sql = "; ".join(parts)
        try:
            async with raw.cursor(row_factory=namedtuple_row) as cursor:
                # No parameters: psycopg sends the text as one simple query.
                await cursor.execute(sql, prepare=False)
                if not rows:
                    return None
                while cursor.nextset():
                    pass  # to the last statement's result
                return await cursor.fetchall()
        except psycopg.errors.InvalidSqlStatementName as exc:
            self.conn.info.pop(_PREPARED_KEY, None)
            raise StatementsLost() from exc
        except psycopg.Error as exc:
            raise await _sa_error(self.conn, raw, sql, None, exc) from exc

    async def _execute(self, raw: psycopg.AsyncConnection, statement, escape) -> str:
        """`EXECUTE name(literals)` of a prepared statement and its
        parameters, prepared on this connection first if need be."""
        prepared, params = statement
        await self._prepare(raw, prepared)
        literals = ", ".join([_literal(params[name], escape) for name in prepared.order])
        return f"{prepared.execute}{literals})"

    async def _prepare(self, raw: psycopg.AsyncConnection, prepared: _Prepared) -> None:
        """PREPARE on this connection unless it has the statement already.
        Which it has is kept in the pool's info for the connection, and
        asked of the server when that was forgotten (a new connection, or a
        rollback that may have deallocated them)."""
        done = self.conn.info.get(_PREPARED_KEY)
        sql = prepared.prepare
        try:
            if done is None:
                sql = _PREPARED_NAMES
                found = await (await raw.execute(sql)).fetchall()
                done = self.conn.info[_PREPARED_KEY] = {name for (name,) in found}
            if prepared.name not in done:
                sql = prepared.prepare
                await raw.execute(sql)
                done.add(prepared.name)
        except psycopg.Error as exc:
            raise await _sa_error(self.conn, raw, sql, None, exc) from exc


Wire = FourMessages | TwoMessages
