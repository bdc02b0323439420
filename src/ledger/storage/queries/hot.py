"""Hot accounts: the statements of their snapshots and deltas, making an
account hot or ordinary, and the compactor's fold.

A hot account's balance is its newest snapshot plus its deltas, read in one
statement (so one consistent view on both engines; see `fragments.current`).
The compactor folds deltas into a new snapshot and deletes exactly the
deltas it folded, in one transaction, so each delta is always in exactly one
of the two places.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    BigInteger,
    Interval,
    String,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.storage import failures
from ledger.storage.fragments import TOTALS
from ledger.storage.retry import Attempt
from ledger.storage.tables import account_balances, hot_deltas, hot_snapshots

_hs = hot_snapshots.c

# The opening snapshot of an account that becomes hot: its balance row as it
# stands (locked by the caller), as of now.
OPEN_SNAPSHOT = hot_snapshots.insert().from_select(
    ["account_id", "seq", "kind", "watermark", *TOTALS, "folded"],
    select(
        account_balances.c.account_id,
        select(func.coalesce(func.max(_hs.seq), 0) + 1)
        .where(_hs.account_id == bindparam("account_id"))
        .scalar_subquery(),
        literal("open"),
        func.now(),
        *(account_balances.c[c] for c in TOTALS),
        literal(0),
    ).where(account_balances.c.account_id == bindparam("account_id")),
)

PREVIOUS_SNAPSHOT = (
    select(_hs.seq, _hs.watermark, func.now().label("now"))
    .where(_hs.account_id == bindparam("account_id"))
    .order_by(_hs.seq.desc())
    .limit(1)
)

# The fold: delete the deltas created at or before the watermark, and append
# a snapshot of the previous one plus exactly the deleted rows (RETURNING,
# not a separate read: what is summed is what was removed). `late_from`
# records the oldest folded delta that the previous snapshot's watermark
# already covered: a transaction that committed after that snapshot was
# taken, which makes that snapshot (and older ones) inexact for `as_of`.
_gone = (
    hot_deltas.delete()
    .where(
        hot_deltas.c.account_id == bindparam("account_id"),
        hot_deltas.c.created_at <= bindparam("watermark"),
    )
    .returning(hot_deltas.c.created_at, *(hot_deltas.c[c] for c in TOTALS))
    .cte("gone")
)
_prev = hot_snapshots.alias("prev")
FOLD = (
    hot_snapshots.insert()
    .from_select(
        ["account_id", "seq", "kind", "watermark", *TOTALS, "folded", "late_from"],
        select(
            _prev.c.account_id,
            _prev.c.seq + 1,
            bindparam("kind", type_=String),
            bindparam("watermark"),
            *(
                cast(_prev.c[c] + func.coalesce(func.sum(_gone.c[c]), 0), BigInteger)
                for c in TOTALS
            ),
            func.count(_gone.c.created_at),
            func.min(case((_gone.c.created_at <= _prev.c.watermark, _gone.c.created_at))),
        )
        .select_from(_prev.outerjoin(_gone, true()))
        .where(_prev.c.account_id == bindparam("account_id"), _prev.c.seq == bindparam("seq"))
        .group_by(
            _prev.c.account_id,
            _prev.c.seq,
            _prev.c.watermark,
            *(_prev.c[c] for c in TOTALS),
        )
        .having(func.count(_gone.c.created_at) >= bindparam("min_folded")),
    )
    .add_cte(_gone)
    .returning(hot_snapshots.c.folded, *(hot_snapshots.c[c] for c in TOTALS))
)

DUE_FOR_COMPACTION = (
    select(hot_deltas.c.account_id)
    .group_by(hot_deltas.c.account_id)
    .having(
        or_(
            func.count() >= bindparam("min_deltas"),
            func.min(hot_deltas.c.created_at) <= func.now() - bindparam("max_age", type_=Interval),
        )
    )
    .limit(bindparam("limit"))
)

# The newest snapshot `as_of` may start from: a fold of this hot period (not
# the opening one, taken from a balance row), at or before the time asked,
# that no late commit made inexact, neither one folded later nor one still
# among the deltas.
_later = hot_snapshots.alias("later")
_opening = hot_snapshots.alias("opening")
_exact_snapshot = and_(
    _hs.account_id == bindparam("account_id"),
    _hs.kind == "compact",
    _hs.seq
    > select(func.coalesce(func.max(_opening.c.seq), 0))
    .where(_opening.c.account_id == bindparam("account_id"), _opening.c.kind == "open")
    .scalar_subquery(),
    ~exists().where(
        _later.c.account_id == bindparam("account_id"),
        _later.c.seq > _hs.seq,
        _later.c.late_from <= _hs.watermark,
    ),
    ~exists().where(
        hot_deltas.c.account_id == bindparam("account_id"),
        hot_deltas.c.created_at <= _hs.watermark,
    ),
)
SNAPSHOT_AS_OF = (
    select(_hs.seq, _hs.watermark, _hs.posted_debits, _hs.posted_credits)
    .where(_exact_snapshot, _hs.watermark <= bindparam("as_of"))
    .order_by(_hs.watermark.desc(), _hs.seq.desc())
    .limit(1)
)


FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)


async def lock_balance_row(conn: AsyncConnection, account_id: str) -> bool | None:
    """Lock the account's balance row; returns whether the account is hot,
    or None if there is no such account. Postings to an ordinary account
    lock the row too, and every posting reads whether the account is hot,
    so a posting either commits before a change made under this lock or
    sees it."""
    row = (
        await conn.execute(
            select(account_balances.c.hot)
            .where(account_balances.c.account_id == account_id)
            .with_for_update()
        )
    ).first()
    return None if row is None else row.hot


async def set_hot(conn: AsyncConnection, account_id: str, hot: bool) -> None:
    """Make the account hot or ordinary; its balance row must be locked
    (`lock_balance_row`) and its hotness be the other one.
    - to hot: appends an opening snapshot of the row's totals;
    - to ordinary: folds every delta into a closing snapshot and writes its
      totals into the row.
    """
    params = {"account_id": account_id}
    totals = {}
    if hot:
        await conn.execute(OPEN_SNAPSHOT, params)
    else:
        prev = (await conn.execute(PREVIOUS_SNAPSHOT, params)).one()
        closed = (
            await conn.execute(
                FOLD,
                {
                    **params,
                    "seq": prev.seq,
                    "kind": "close",
                    "watermark": max(prev.watermark, prev.now),
                    "min_folded": 0,
                },
            )
        ).one()
        totals = {c: getattr(closed, c) for c in TOTALS}
    await conn.execute(
        update(account_balances)
        .where(account_balances.c.account_id == account_id)
        .values(hot=hot, **totals)
    )


class LostFold(Exception):
    """Another compactor appended the snapshot this one was about to."""


async def fold(conn: AsyncConnection, attempt: Attempt, account_id: str, grace: timedelta) -> int:
    """Fold the account's deltas created before now - `grace` into a new
    snapshot; returns how many were folded (0: nothing to fold). Raises
    LostFold when another compactor appended that snapshot first.

    Correct with concurrent postings and compactors on both engines:
    - A posting that has not committed is invisible here, whatever its
      creation time: its delta is not deleted, stays, and is folded by a
      later compaction. Nothing is lost, and because the snapshot adds
      exactly the rows this DELETE removed (RETURNING), nothing is counted
      twice. On CockroachDB a posting cannot commit "under" this read
      either: a write below a timestamp another transaction has read is
      pushed above it, so it too lands after this snapshot.
    - Two compactors build on the same previous snapshot and both try to
      append seq + 1: the primary key lets one commit. The other fails (a
      unique violation, or a serialization failure on its DELETE) and
      folds nothing.
    - The grace only keeps `as_of` fast: a posting that commits after a
      snapshot whose watermark covers its creation time would make that
      snapshot inexact (the next fold records it in `late_from`, and `as_of`
      skips such snapshots). Waiting `grace` makes that rare.
    """
    params = {"account_id": account_id}
    prev = (await conn.execute(PREVIOUS_SNAPSHOT, params)).first()
    if prev is None:
        return 0
    attempt.wrote = True
    try:
        row = (
            await conn.execute(
                FOLD,
                {
                    **params,
                    "seq": prev.seq,
                    "kind": "compact",
                    # Watermarks never go back, whatever the clocks.
                    "watermark": max(prev.watermark, prev.now - grace),
                    "min_folded": 1,
                },
            )
        ).first()
    except sa_exc.IntegrityError as exc:
        if failures.constraint_name(exc) == "hot_snapshots_pkey":
            raise LostFold() from exc
        raise
    return 0 if row is None else row.folded


async def due(conn: AsyncConnection, min_deltas: int, max_age: timedelta, limit: int) -> list[str]:
    """Hot accounts with `min_deltas` unfolded deltas, or one older than
    `max_age`."""
    found = await conn.execute(
        DUE_FOR_COMPACTION, {"min_deltas": min_deltas, "max_age": max_age, "limit": limit}
    )
    return [r.account_id for r in found]


async def snapshot_as_of(conn: AsyncConnection, account_id: str, as_of: datetime):
    """The newest snapshot `as_of` may start from (see SNAPSHOT_AS_OF), or None."""
    return (await conn.execute(SNAPSHOT_AS_OF, {"account_id": account_id, "as_of": as_of})).first()
