"""The raw-database baseline of `ledger bench`: pgbench running the very
statements one posting runs, on the same server.

The script is rendered from the posting path's own Core statements
(`ledger.storage.posting.statements`): the header insert with the locking
read of two accounts, then the entries and both balance updates in one
statement, SERIALIZABLE. Each bind parameter becomes the pgbench expression
that stands for it, so a change to the posting SQL changes the baseline with
it; a parameter this module has no expression for stops the run (and the
unit test) instead of going stale silently.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile

from sqlalchemy.dialects.postgresql import psycopg as pg_dialect
from sqlalchemy.engine import make_url

from ledger.storage import dialect
from ledger.storage.dialect.names import POSTGRESQL
from ledger.storage.embedded import EmbeddedPostgres
from ledger.storage.posting.statements import open_posting, write_entries

CLIENTS = 16

# The debit account, the credit account and the transaction id, as pgbench
# expressions over the variables the script's \set lines make.
_DEBIT = "('{prefix}' || :a::text)"
_CREDIT = "('{prefix}' || :b2::text)"
_TRANSACTION_ID = "(lpad(to_hex(:t_hi::bigint), 16, '0') || lpad(to_hex(:t_lo::bigint), 16, '0'))"

_HEADER = {
    "id": _TRANSACTION_ID,
    "client_id": "'pgbench'",
    "idempotency_key": "(gen_random_uuid()::text)",
    "fingerprint": "repeat('0', 64)",
    "reverses": "NULL",
    "description": "NULL",
    "metadata": "'{{}}'",
    "pending": "false",
    "timeout_seconds": "NULL",
    "resolves": "NULL",
    "resolution": "NULL",
    "id_0": _DEBIT,
    "id_1": _CREDIT,
    # The posting's audit row, as the service writes it.
    "audit_id": "gen_random_uuid()",
    "audit_request_id": "'pgbench'",
    "audit_key_id": "NULL",
    "audit_key_name": "'pgbench'",
    "audit_client_id": "'pgbench'",
    "audit_source": "NULL",
    "audit_action": "'transaction.create'",
    "audit_target": _TRANSACTION_ID,
    "audit_transaction_id": _TRANSACTION_ID,
    "audit_fingerprint": "repeat('0', 64)",
    "audit_reason": "NULL",
    "audit_outcome": "'created'",
    "audit_problem": "NULL",
    "audit_detail": "NULL",
    "audit_reach": "jsonb_build_array(" + _DEBIT + ", " + _CREDIT + ")",
}


def _leg(i: int, account: str, direction: str) -> dict[str, str]:
    return {
        f"account_id_{i}": account,
        f"entry_id_{i}": "uuidv7()",
        f"transaction_id_{i}": _TRANSACTION_ID,
        f"leg_{i}": str(i),
        f"direction_{i}": f"'{direction}'",
        f"amount_{i}": ":amount",
        f"currency_{i}": "'USD'",
        f"created_at_{i}": "now()",
        f"pending_{i}": "false",
    }


def _balance(i: int, account: str, debit: str, credit: str) -> dict[str, str]:
    return {f"a_{i}": account, f"d_{i}": debit, f"c_{i}": credit, f"pd_{i}": "0", f"pc_{i}": "0"}


_WRITE = {
    **_leg(0, _DEBIT, "debit"),
    **_leg(1, _CREDIT, "credit"),
    **_balance(0, _DEBIT, ":amount", "0"),
    **_balance(1, _CREDIT, "0", ":amount"),
}

# A bind parameter as SQLAlchemy's named style renders it (`:name`), not
# a cast (`::UUID`).
_PARAMETER = re.compile(r"(?<!:):([a-z][a-z0-9_]*)")


def _render(statement, expressions: dict[str, str]) -> str:
    sql = str(statement.compile(dialect=pg_dialect.dialect(paramstyle="named")))
    missing = sorted(set(_PARAMETER.findall(sql)) - set(expressions))
    if missing:
        raise KeyError(f"no pgbench expression for the posting parameters {missing}")
    return _PARAMETER.sub(lambda m: expressions[m.group(1)], sql)


def script(prefix: str) -> str:
    """One two-leg posting between two random accounts of `naccounts`
    (`<prefix><n>`), as the service's PostgreSQL path sends it."""
    fill = {k: v.format(prefix=prefix) for k, v in {**_HEADER, **_WRITE}.items()}
    opening = _render(open_posting(2), {k: fill[k] for k in _HEADER})
    writing = _render(write_entries(2, 0, 2), {k: fill[k] for k in _WRITE})
    return (
        "\\set a random(0, :naccounts - 1)\n"
        "\\set b random(0, :naccounts - 2)\n"
        "\\set b2 (:a + 1 + :b) % :naccounts\n"
        "\\set amount random(1, 1000)\n"
        "\\set t_hi random(0, 9223372036854775806)\n"
        "\\set t_lo random(0, 9223372036854775806)\n"
        "BEGIN ISOLATION LEVEL SERIALIZABLE;\n"
        + "".join(f"{s};\n" for s in dialect.posting_settings(POSTGRESQL))
        + f"{opening};\n"
        f"{writing};\n"
        "END;\n"
    )


def connection_args(database_url: str) -> tuple[list[str], str] | None:
    """pgbench's host, port and user options and the database name for a
    SQLAlchemy URL; None where pgbench cannot go (it speaks PostgreSQL's
    protocol, not CockroachDB's SQL)."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return None
    connection = ["-U", url.username or "postgres"]
    host = url.host or url.query.get("host")
    if host:
        connection += ["-h", str(host)]
    port = url.port or url.query.get("port")
    if port:
        connection += ["-p", str(port)]
    return connection, str(url.database)


def run(
    connection: list[str],
    database: str,
    accounts: int,
    prefix: str,
    clients: int,
    seconds: int | None = None,
    *,
    transactions: int | None = None,
) -> dict:
    """pgbench with `script` for `seconds` (or `transactions` per client);
    `connection` is the host/port/user options. Returns tps and the retry
    line."""
    length = ["-T", str(seconds)] if transactions is None else ["-t", str(transactions)]
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(script(prefix))
        path = f.name
    try:
        out = subprocess.run(
            [
                str(EmbeddedPostgres.binary("pgbench")),
                "-n",
                # Prepared once per connection, as the service's statements are.
                "--protocol=prepared",
                "-f",
                path,
                "-c",
                str(clients),
                "-j",
                "2",
                *length,
                "-D",
                f"naccounts={accounts}",
                "--max-tries=20",
                *connection,
                database,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(path)
    tps = next(
        float(line.split("=")[1].split()[0]) for line in out.splitlines() if line.startswith("tps")
    )
    retried = next((line.strip() for line in out.splitlines() if "retried" in line), "")
    return {"tps": tps, "retried": retried}
