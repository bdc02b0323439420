#!/usr/bin/env python3
"""Check an inclusion proof from `GET /transactions/{id}/proof` with
nothing but Python's standard library: the auditor's own recomputation of
what the ledger claims (the encoding is in the README, "The sealed
journal").

    curl -s -H "Authorization: Bearer $KEY" $LEDGER/transactions/$ID/proof > proof.json
    python3 tools/verify_proof.py proof.json --head <the head hash you recorded>

Checks that the record hashes to the proof's hash, that the Merkle path
leads from it to the block's root, that every block's hash is right and
each names the one before it, and (with --head) that the chain reaches the
head you recorded. Exit status 0 when all of it holds, 1 otherwise.
"""

import argparse
import hashlib
import itertools
import json
import sys
from datetime import UTC, datetime


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def block_hash(block: dict) -> str:
    fields = ("number", "first_sequence", "last_sequence", "merkle_root", "previous_hash")
    body = {name: block[name] for name in fields}
    body["version"] = 1
    # The API writes times in RFC 3339; the hash covers them as
    # YYYY-MM-DDTHH:MM:SS.ffffffZ (UTC, microseconds).
    body["sealed_at"] = normal_time(block["sealed_at"])
    return sha256(canonical(body)).hex()


def normal_time(text: str) -> str:
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def root_from_path(item: bytes, path: list) -> bytes:
    node = sha256(b"\x00" + item)  # RFC 6962 leaf
    for step in path:
        sibling = bytes.fromhex(step["hash"])
        if step["side"] == "left":
            node = sha256(b"\x01" + sibling + node)
        else:
            node = sha256(b"\x01" + node + sibling)
    return node


def check(proof: dict, head: str | None) -> list[str]:
    """What does not hold, in words; empty when the proof is good."""
    wrong = []
    if sha256(canonical(proof["record"])).hex() != proof["hash"]:
        wrong.append("the record does not hash to the proof's hash")
    block = proof["block"]
    if root_from_path(bytes.fromhex(proof["hash"]), proof["path"]).hex() != block["merkle_root"]:
        wrong.append(f"the Merkle path does not lead to block {block['number']}'s root")
    chain = [block, *proof["chain"]]
    for before, after in itertools.pairwise(chain):
        if after["previous_hash"] != before["hash"]:
            wrong.append(f"block {after['number']} does not name block {before['number']}")
    for each in chain:
        if block_hash(each) != each["hash"]:
            wrong.append(f"block {each['number']}'s hash does not match its contents")
    if head is not None and head not in {each["hash"] for each in chain}:
        more = ""
        if not proof["chain_complete"]:
            more = " (the chain is cut short: continue it with GET /journal/blocks)"
        wrong.append(f"the chain does not reach the head {head}{more}")
    return wrong


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("proof", help="the proof's JSON file, or - for standard input")
    parser.add_argument("--head", help="a head block hash recorded earlier")
    args = parser.parse_args()
    if args.proof == "-":
        proof = json.load(sys.stdin)
    else:
        with open(args.proof, encoding="utf-8") as source:
            proof = json.load(source)
    wrong = check(proof, args.head)
    for line in wrong:
        print(f"FAILED: {line}")
    if not wrong:
        last = ([proof["block"]] + proof["chain"])[-1]
        print(
            f"ok: transaction {proof['transaction_id']} is sequence {proof['sequence']} in "
            f"block {proof['block']['number']}, chained to block {last['number']} ({last['hash']})"
        )
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
