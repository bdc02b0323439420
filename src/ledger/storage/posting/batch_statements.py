"""The statements of a batch of postings (`ledger.engine.batch`): three,
whatever the batch's size, each taking its rows as arrays (one array per
column, unnested into rows), so one SQL text serves every batch and is
prepared once per connection.

- `LOCK`: the database's time, and the batch's accounts with their balance
  rows (the ordinary ones locked in id order).
- `HEADERS`: the new transactions' rows, with every item's audit row riding
  along as a CTE.
- `WRITES`: after the headers (their rows must exist for the foreign keys):
  the entries, the hot deltas, the pending expiries and an atomic batch's
  key as CTEs around the balance rows' UPDATE by their net changes.

Arrays and a multi-argument `unnest` in FROM exist on PostgreSQL and
CockroachDB alike; JSON travels as text and is cast per row, since
CockroachDB's JSONB arrays are young.
"""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    Text,
    any_,
    bindparam,
    cast,
    func,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB

from ledger.storage.posting.statements import ENTRY_COLUMNS, locked_accounts
from ledger.storage.queries.audit import AUDIT_COLUMNS
from ledger.storage.tables import (
    account_balances,
    accounts,
    audit_log,
    entries,
    hot_deltas,
    pending_expiry,
    posting_batches,
    transactions,
)


def _rows(prefix: str, columns: dict):
    """`unnest(<prefix>_<name> :: <type>[], ...) AS <prefix>(<names>)`: one
    array parameter per column, zipped into rows."""
    arrays = [cast(bindparam(f"{prefix}_{name}"), ARRAY(type_)) for name, type_ in columns.items()]
    return func.unnest(*arrays).table_valued(*columns).render_derived(name=prefix)


def _lock():
    ids = cast(bindparam("ids"), ARRAY(accounts.c.id.type))
    found = locked_accounts(lambda account_id: account_id == any_(ids))
    clock = select(func.now().label("now")).cte("clock")
    return select(clock.c.now, *found.c).select_from(clock.outerjoin(found, true()))


LOCK = _lock()

_T = transactions.c
HEADER_ARRAYS = {
    "id": _T.id.type,
    "idempotency_key": _T.idempotency_key.type,
    "fingerprint": _T.fingerprint.type,
    "description": _T.description.type,
    "metadata": Text(),
    "pending": _T.pending.type,
    "timeout_seconds": _T.timeout_seconds.type,
}
AUDIT_ARRAYS = {name: audit_log.c[name].type for name in AUDIT_COLUMNS}


def _headers():
    h = _rows("h", HEADER_ARRAYS)
    rows = select(
        h.c.id,
        bindparam("client_id", type_=_T.client_id.type),
        h.c.idempotency_key,
        h.c.fingerprint,
        h.c.description,
        cast(h.c.metadata, JSONB),
        h.c.pending,
        h.c.timeout_seconds,
    )
    names = ["id", "client_id", "idempotency_key", "fingerprint", "description", "metadata"]
    insert_headers = transactions.insert().from_select([*names, "pending", "timeout_seconds"], rows)
    a = _rows("al", AUDIT_ARRAYS)
    insert_audit = audit_log.insert().from_select(list(AUDIT_COLUMNS), select(*a.c))
    return insert_headers.add_cte(insert_audit.cte("audit_rows"))


HEADERS = _headers()

# A single posting's entry columns but the time, which is one parameter.
ENTRY_ARRAYS = {name: entries.c[name].type for name in ENTRY_COLUMNS if name != "created_at"}
TOTALS = ("posted_debits", "posted_credits", "pending_debits", "pending_credits")
NET_ARRAYS = {name: account_balances.c[name].type for name in ("account_id", *TOTALS)}
HOT_ARRAYS = {name: hot_deltas.c[name].type for name in ("account_id", "transaction_id", *TOTALS)}
EXPIRY_ARRAYS = {name: pending_expiry.c[name].type for name in ("transaction_id", "expires_at")}
BATCH_ARRAYS = {
    "client_id": posting_batches.c.client_id.type,
    "idempotency_key": posting_batches.c.idempotency_key.type,
    "fingerprint": posting_batches.c.fingerprint.type,
    "transaction_ids": Text(),
}


def _writes():
    created_at = bindparam("created_at", type_=entries.c.created_at.type)
    e = _rows("e", ENTRY_ARRAYS)
    insert_entries = entries.insert().from_select(
        [*ENTRY_ARRAYS, "created_at"], select(*e.c, created_at)
    )
    hd = _rows("hd", HOT_ARRAYS)
    insert_hot = hot_deltas.insert().from_select(
        [*HOT_ARRAYS, "created_at"], select(*hd.c, created_at)
    )
    x = _rows("x", EXPIRY_ARRAYS)
    insert_expiry = pending_expiry.insert().from_select(list(EXPIRY_ARRAYS), select(*x.c))
    b = _rows("b", BATCH_ARRAYS)
    insert_batch = posting_batches.insert().from_select(
        list(BATCH_ARRAYS),
        select(
            b.c.client_id, b.c.idempotency_key, b.c.fingerprint, cast(b.c.transaction_ids, JSONB)
        ),
    )
    n = _rows("n", NET_ARRAYS)
    balances = account_balances.c
    statement = (
        update(account_balances)
        .where(balances.account_id == n.c.account_id)
        .values({name: balances[name] + n.c[name] for name in TOTALS})
    )
    for name, rider in (
        ("w_entries", insert_entries),
        ("w_hot", insert_hot),
        ("w_expiry", insert_expiry),
        ("w_batch", insert_batch),
    ):
        statement = statement.add_cte(rider.cte(name))
    return statement


WRITES = _writes()
