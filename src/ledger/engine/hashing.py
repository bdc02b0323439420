"""The sealed journal's hashes: a transaction's canonical encoding, the
Merkle tree over a block, and the block's own hash. Pure functions, so that
`tools/verify_proof.py` can say the same thing in a few lines of the
standard library (the README specifies the encoding).

- A transaction's hash is SHA-256 of its record (`JournalRecord`) as
  canonical JSON: keys sorted, no whitespace, UTF-8 without escaping,
  timestamps as `YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC, ids as lowercase
  hyphenated UUIDs, amounts as integers, entries in leg order.
- A block's Merkle root is RFC 6962's (Certificate Transparency): leaf
  `SHA-256(0x00 || hash)`, node `SHA-256(0x01 || left || right)`, the left
  subtree holding the largest power of two below the count.
- A block's hash is SHA-256 of its canonical JSON: number, first and last
  sequence, Merkle root, previous block's hash (64 zeros for block 1) and
  the time it was sealed.
"""

from __future__ import annotations

import functools
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

ENCODING_VERSION = 1
GENESIS_HASH = "0" * 64


def canonical(value: Any) -> bytes:
    """The one byte string a JSON value hashes as."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@functools.lru_cache(maxsize=4096)
def timestamp(at: datetime) -> str:
    """A time as the encoding writes it: UTC, microseconds, `Z`. (Cached: a
    transaction's entries share its time, and profiling the sequencer found
    the formatting at a third of its hashing.)"""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# --- Merkle trees (RFC 6962, section 2.1) --------------------------------------------


def _leaf(item: bytes) -> bytes:
    return sha256(b"\x00" + item)


def _node(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def _split(n: int) -> int:
    """The largest power of two below n (n >= 2)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def merkle_root(items: list[bytes]) -> bytes:
    """The root over the items (each a transaction's 32-byte hash). A block
    has at least one."""
    assert items, "a block seals at least one transaction"
    level = [_leaf(item) for item in items]
    return _root(level)


def _root(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return _node(_root(leaves[:k]), _root(leaves[k:]))


def merkle_path(items: list[bytes], index: int) -> list[tuple[str, bytes]]:
    """The audit path from item `index` to the root: (side, hash) from the
    leaf up, where side says whether the sibling is on the `left` or the
    `right`."""
    assert 0 <= index < len(items)
    return _path([_leaf(item) for item in items], index)


def _path(leaves: list[bytes], index: int) -> list[tuple[str, bytes]]:
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*_path(leaves[:k], index), ("right", _root(leaves[k:]))]
    return [*_path(leaves[k:], index - k), ("left", _root(leaves[:k]))]


def root_from_path(item: bytes, path: list[tuple[str, bytes]]) -> bytes:
    """The root an item and its audit path lead to."""
    node = _leaf(item)
    for side, sibling in path:
        node = _node(sibling, node) if side == "left" else _node(node, sibling)
    return node


# --- blocks ---------------------------------------------------------------------------


def block_hash(
    number: int,
    first_sequence: int,
    last_sequence: int,
    merkle_root_hex: str,
    previous_hash_hex: str,
    sealed_at: datetime,
) -> str:
    """A block's hash, hex."""
    body = {
        "version": ENCODING_VERSION,
        "number": number,
        "first_sequence": first_sequence,
        "last_sequence": last_sequence,
        "merkle_root": merkle_root_hex,
        "previous_hash": previous_hash_hex,
        "sealed_at": timestamp(sealed_at),
    }
    return sha256(canonical(body)).hex()
