"""The sealed journal's rules without a database: the encoding a hash is
taken of, Merkle roots and paths (RFC 6962), blocks and their chain, and
`JournalCheck`'s verdict on damaged blocks; and the dialect seam that says
what may be sealed on each database."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.engine import hashing
from ledger.engine.journal_check import JournalCheck, LeftOut, SealedRow
from ledger.engine.journal_model import (
    JournalEntry,
    JournalRecord,
    build_block,
    encode_record,
    transaction_hash,
)
from ledger.storage import dialect, migrate

AT = datetime(2026, 11, 22, 7, 0, 0, 123456, tzinfo=UTC)
NOTHING_LEFT = LeftOut([], 0, 0, None, [], 0)


def record(n: int, **fields) -> JournalRecord:
    base = dict(
        id=f"00000000-0000-4000-8000-{n:012d}",
        client_id="c",
        idempotency_key=f"k{n}",
        fingerprint="f",
        created_at=AT,
        description=None,
        metadata={},
        pending=False,
        timeout_seconds=None,
        reverses=None,
        resolves=None,
        resolution=None,
        entries=[
            JournalEntry(1, "e1", "b", "credit", n, "USD", False, AT),
            JournalEntry(0, "e0", "a", "debit", n, "USD", False, AT),
        ],
    )
    return JournalRecord(**{**base, **fields})


def test_the_encoding_is_canonical_json_with_fixed_times_and_legs_in_order():
    body = encode_record(record(7, metadata={"b": 1, "a": "é"}))
    text = hashing.canonical(body).decode()
    assert text.startswith('{"client_id":"c","created_at":"2026-11-22T07:00:00.123456Z"')
    assert '"metadata":{"a":"é","b":1}' in text
    assert [e["leg"] for e in body["entries"]] == [0, 1]
    assert (
        transaction_hash(record(7))
        == hashlib.sha256(hashing.canonical(encode_record(record(7)))).hexdigest()
    )
    # A time in another zone is the same instant, and hashes the same.
    elsewhere = AT.astimezone(timezone(timedelta(hours=5)))
    assert transaction_hash(record(7, created_at=elsewhere)) == transaction_hash(record(7))
    # Every field counts.
    assert transaction_hash(record(7, idempotency_key="other")) != transaction_hash(record(7))


def test_merkle_roots_follow_rfc_6962():
    def leaf(item: bytes) -> bytes:
        return hashlib.sha256(b"\x00" + item).digest()

    def node(left: bytes, right: bytes) -> bytes:
        return hashlib.sha256(b"\x01" + left + right).digest()

    a, b, c = b"a" * 32, b"b" * 32, b"c" * 32
    assert hashing.merkle_root([a]) == leaf(a)
    assert hashing.merkle_root([a, b]) == node(leaf(a), leaf(b))
    # Three leaves: the left subtree takes the largest power of two below 3.
    assert hashing.merkle_root([a, b, c]) == node(node(leaf(a), leaf(b)), leaf(c))


@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=70), st.data())
def test_every_leaf_s_path_leads_to_the_root_and_no_other_leaf_s(items, data):
    index = data.draw(st.integers(0, len(items) - 1))
    root = hashing.merkle_root(items)
    path = hashing.merkle_path(items, index)
    assert hashing.root_from_path(items[index], path) == root
    stranger = bytes(32) if items[index] != bytes(32) else b"\x01" * 32
    assert hashing.root_from_path(stranger, path) != root


def chain(blocks: int, per_block: int = 3):
    """Blocks of records, each chained to the one before: [(block, rows)]."""
    out, previous, n = [], None, 0
    for _ in range(blocks):
        records = [record(n + i) for i in range(per_block)]
        n += per_block
        detail = asyncio.run(build_block(previous, records, AT + timedelta(seconds=len(out))))
        rows = [
            SealedRow(t.sequence, t.transaction_id, t.hash, r)
            for t, r in zip(detail.transactions, records, strict=True)
        ]
        out.append((detail.block, rows))
        previous = detail.block
    return out


def judge(blocks, previous=None):
    check = JournalCheck(previous, transaction_hash)
    for block, rows in blocks:
        check.block(block, rows)
    return check.finish(NOTHING_LEFT)


def test_a_clean_chain_is_ok_and_numbered_from_one():
    blocks = chain(4)
    assert [b.number for b, _ in blocks] == [1, 2, 3, 4]
    assert [b.first_sequence for b, _ in blocks] == [1, 4, 7, 10]
    assert blocks[0][0].previous_hash == hashing.GENESIS_HASH
    report = judge(blocks)
    assert report.ok and report.blocks == 4 and report.transactions == 12
    # From block 3 on, trusting block 2 as stored.
    assert judge(blocks[2:], previous=blocks[1][0]).ok


def test_changed_content_a_gone_transaction_and_a_lost_row_are_each_named():
    blocks = chain(3)
    block, rows = blocks[1]
    changed = SealedRow(rows[0].sequence, rows[0].transaction_id, rows[0].hash, record(999))
    gone = SealedRow(rows[1].sequence, rows[1].transaction_id, rows[1].hash, None)
    report = judge([blocks[0], (block, [changed, gone, rows[2]]), blocks[2]])
    assert not report.ok and report.first_broken_block == 2
    assert [(t.transaction_id, t.block) for t in report.changed_transactions] == [
        (rows[0].transaction_id, 2),
        (rows[1].transaction_id, 2),
    ]
    lost = judge([blocks[0], (block, rows[:1] + rows[2:]), blocks[2]])
    assert any("sequence 5 is missing" in p.problem for p in lost.broken_blocks)
    assert any("Merkle root" in p.problem for p in lost.broken_blocks)


def test_reordered_missing_and_rewritten_blocks_break_the_chain_where_they_start():
    blocks = chain(4)
    swapped = judge([blocks[0], blocks[2], blocks[1], blocks[3]])
    assert swapped.first_broken_block == 3  # block 3 came where 2 should
    missing = judge([blocks[0], blocks[2], blocks[3]])
    assert missing.first_broken_block == 3
    assert any("block 2 was expected" in p.problem for p in missing.broken_blocks)
    # A block re-sealed over other content, with a hash of its own that fits:
    # its successor no longer names it.
    forged = asyncio.run(build_block(blocks[0][0], [record(50)], AT))
    rows = [
        SealedRow(t.sequence, t.transaction_id, t.hash, record(50)) for t in forged.transactions
    ]
    rewritten = judge([blocks[0], (forged.block, rows), blocks[2], blocks[3]])
    assert rewritten.first_broken_block == 3
    assert rewritten.broken_blocks[0].problem.startswith("its first sequence is 4, not 3") or any(
        "previous_hash" in p.problem for p in rewritten.broken_blocks
    )


def test_transactions_left_out_or_unaudited_fail_the_verdict():
    check = JournalCheck(None, transaction_hash)
    assert not check.finish(LeftOut(["t"], 1, 0, None, [], 0)).ok
    check = JournalCheck(None, transaction_hash)
    assert not check.finish(LeftOut([], 0, 0, None, ["t"], 1)).ok
    check = JournalCheck(None, transaction_hash)
    assert check.finish(LeftOut([], 0, 5, 0.3, [], 0)).ok, "waiting is not an error"


# --- the dialect seam -------------------------------------------------------------------


def test_postgresql_seals_below_the_snapshot_xmin_in_one_repeatable_read_snapshot():
    assert dialect.seals_in_one_transaction("postgresql")
    assert dialect.seal_options("postgresql") == {"isolation_level": "REPEATABLE READ"}
    assert "pg_snapshot_xmin(pg_current_snapshot())" in dialect.sealable_bound_sql("postgresql")
    window, params = dialect.candidate_window("postgresql", Decimal(1234), 300)
    assert "commit_xid < :bound" in window and params == {"window_from": 1234}
    assert dialect.candidate_window("postgresql", None, 300)[1] == {"window_from": -1}
    assert dialect.commit_position_sql("postgresql") == "transactions.commit_xid"
    assert dialect.closed_read_statements("postgresql", AT) == []


def test_cockroachdb_seals_what_it_read_at_a_closed_timestamp_by_commit_timestamp():
    assert not dialect.seals_in_one_transaction("cockroachdb")
    assert "follower_read_timestamp()" in dialect.sealable_bound_sql("cockroachdb")
    assert dialect.commit_position_sql("cockroachdb").endswith("crdb_internal_mvcc_timestamp")
    [statement] = dialect.closed_read_statements("cockroachdb", AT)
    assert statement == "SET TRANSACTION AS OF SYSTEM TIME '2026-11-22T07:00:00.123456+00:00'"
    # The read looks back from the last sealed commit timestamp (nanoseconds).
    horizon = Decimal(int(AT.timestamp()) * 10**9) + Decimal("0.0000000005")
    window, params = dialect.candidate_window("cockroachdb", horizon, 300)
    assert window == "transactions.created_at >= :window_from"
    assert params["window_from"] == AT.replace(microsecond=0) - timedelta(seconds=300)


@pytest.mark.parametrize("url", ["postgresql+psycopg://x/y", "cockroachdb+psycopg://x/y"])
def test_the_journal_tables_are_append_only_for_the_writer(url):
    sql = migrate.render_sql(url)
    assert "GRANT SELECT, INSERT ON TABLE journal_blocks, journal TO ledger_writer;" in sql
    sharded = "CONSTRAINT journal_pkey PRIMARY KEY (block, sequence) USING HASH" in sql
    assert sharded == url.startswith("cockroachdb")
    assert ("ON transactions (commit_xid)" in sql) == url.startswith("postgresql")


@pytest.mark.parametrize("url", ["postgresql+psycopg://x/y", "cockroachdb+psycopg://x/y"])
def test_the_sequencer_s_read_compiles_for_both_dialects(url):
    from ledger.settings import Settings
    from ledger.storage.database import create_engine
    from ledger.storage.queries import journal

    engine = create_engine(url, Settings())
    name = engine.dialect.name
    window, _ = dialect.candidate_window(name, None, 300)
    sql = " ".join(str(journal._candidates(name, window).compile(dialect=engine.dialect)).split())
    position = dialect.commit_position_sql(name)
    assert f"({position}, transactions.id) >" in sql
    assert f"ORDER BY {position}, transactions.id" in sql


def test_a_block_of_many_transactions_hashes_each_in_order_across_the_turns():
    records = [record(n) for n in range(70)]  # more than two turns of hashing
    detail = asyncio.run(build_block(None, records, AT))
    assert [t.hash for t in detail.transactions] == [transaction_hash(r) for r in records]
    assert [t.sequence for t in detail.transactions] == list(range(1, 71))
    roots = [bytes.fromhex(transaction_hash(r)) for r in records]
    assert detail.block.merkle_root == hashing.merkle_root(roots).hex()
