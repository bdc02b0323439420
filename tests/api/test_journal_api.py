"""The sealed journal over HTTP: the head, blocks, a transaction's place
and its inclusion proof, checked by the auditor's script from the repo."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
from pathlib import Path

from ledger.engine.access import ACCOUNTS_WRITE, JOURNAL_READ, TRANSACTIONS_READ, TRANSACTIONS_WRITE
from support.journal import accounts, post
from support.ledger import app_client, make_key

SCRIPT = Path(__file__).parents[2] / "tools" / "verify_proof.py"


async def sealed(client, transaction_id: str) -> dict:
    """The transaction once the session app's sequencer has sealed it."""
    for _ in range(200):
        found = (await client.get(f"/transactions/{transaction_id}")).json()
        if found["sequence"] is not None:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{transaction_id} was not sealed within 10 s")


def verify_proof(path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(path), *args], capture_output=True, text=True
    )


async def test_a_transaction_gets_its_place_and_a_proof_the_auditors_script_accepts(
    client, tmp_path
):
    a, b = await accounts(client)
    posted = await post(client, a, b, 12, description="rent — März", metadata={"n": 1.5})
    assert posted["sequence"] is None and posted["block"] is None
    found = await sealed(client, posted["id"])
    metrics = (await client.get("/metrics")).text
    counted = [line for line in metrics.splitlines() if line.startswith("ledger_journal_sealed")]
    assert counted and float(counted[0].split()[-1]) >= 1, counted
    head = (await client.get("/journal/head")).json()
    assert head["block"] >= found["block"] and head["last_sequence"] >= found["sequence"]

    answer = await client.get(f"/transactions/{posted['id']}/proof")
    assert answer.status_code == 200, answer.text
    proof = answer.json()
    assert proof["sequence"] == found["sequence"] and proof["block"]["number"] == found["block"]
    assert proof["record"]["entries"][0]["amount"] == 12
    block = (await client.get(f"/journal/blocks/{found['block']}")).json()
    assert block["block"] == proof["block"]
    assert block["transactions"][proof["leaf_index"]]["transaction_id"] == posted["id"]

    saved = tmp_path / "proof.json"
    saved.write_text(answer.text)
    head_now = (await client.get("/journal/head")).json()["hash"]
    good = verify_proof(saved, "--head", head_now)
    assert good.returncode == 0, good.stdout + good.stderr
    assert f"sequence {found['sequence']}" in good.stdout

    # The auditor's script is not a rubber stamp: each lie is caught.
    lies = {
        "amount": lambda p: p["record"]["entries"][0].update(amount=13),
        "path": lambda p: p["path"].append({"side": "left", "hash": "00" * 32}),
        "block": lambda p: p["block"].update(sealed_at="2000-01-01T00:00:00Z"),
    }
    for name, lie in lies.items():
        forged = json.loads(answer.text)
        lie(forged)
        saved.write_text(json.dumps(forged))
        assert verify_proof(saved).returncode == 1, name
    saved.write_text(answer.text)
    assert verify_proof(saved, "--head", "ab" * 32).returncode == 1


async def test_blocks_page_in_order_and_chain_to_each_other(client):
    a, b = await accounts(client)
    await sealed(client, (await post(client, a, b))["id"])
    first = (await client.get("/journal/blocks", params={"limit": 2})).json()
    assert [blk["number"] for blk in first["items"]][:1] == [1]
    if first["next_cursor"]:
        second = (
            await client.get("/journal/blocks", params={"limit": 2, "cursor": first["next_cursor"]})
        ).json()
        chain = first["items"] + second["items"]
        for before, after in itertools.pairwise(chain):
            assert after["number"] == before["number"] + 1
            assert after["previous_hash"] == before["hash"]
            assert after["first_sequence"] == before["last_sequence"] + 1


async def test_unknown_blocks_and_transactions_are_404_and_an_unsealed_one_409(
    client, database_url, settings, admin_key
):
    for path in ("/journal/blocks/0", "/journal/blocks/x", "/journal/blocks/99999999999"):
        answer = await client.get(path)
        assert answer.status_code == 404 and answer.json()["code"] == "block-not-found", path
    answer = await client.get("/transactions/00000000-0000-4000-8000-000000000000/proof")
    assert answer.json()["code"] == "transaction-not-found"
    bad_cursor = await client.get("/journal/blocks", params={"cursor": "bm90LWEtbnVtYmVy"})
    assert bad_cursor.status_code == 400
    # No sequencer in this app, nor (briefly) in the session's: it stays unsealed.
    quiet = settings.with_overrides(seal_seconds=0, expiry_sweep_seconds=0)
    async with app_client(database_url, quiet, admin_key) as still:
        a, b = await accounts(still)
        posted = await post(still, a, b)
        answer = await still.get(f"/transactions/{posted['id']}/proof")
        if answer.status_code == 200:
            return  # the session app's sequencer sealed it first: nothing to see
        assert answer.status_code == 409, answer.text
        assert answer.json()["code"] == "not-sealed-yet"
        assert posted["id"] in answer.json()["detail"]


async def test_the_journal_needs_its_scope_and_a_proof_the_keys_reach(client, ledger):
    a, b = await accounts(client)
    posted = await post(client, a, b)
    await sealed(client, posted["id"])
    no_scope = await make_key(ledger, TRANSACTIONS_READ, TRANSACTIONS_WRITE, ACCOUNTS_WRITE)
    answer = await client.get("/journal/head", headers={"Authorization": f"Bearer {no_scope}"})
    assert answer.status_code == 403 and answer.json()["scope"] == "journal:read"
    elsewhere = await make_key(ledger, JOURNAL_READ, accounts=["nobody-"])
    answer = await client.get(
        f"/transactions/{posted['id']}/proof", headers={"Authorization": f"Bearer {elsewhere}"}
    )
    # Out of reach it is not found, and neither account is named.
    assert answer.status_code == 404 and answer.json()["code"] == "transaction-not-found"
    assert a not in answer.text and b not in answer.text
    reads = await make_key(ledger, JOURNAL_READ)
    answer = await client.get("/journal/head", headers={"Authorization": f"Bearer {reads}"})
    assert answer.status_code == 200


async def test_the_document_says_a_proof_may_be_not_sealed_yet(client):
    doc = (await client.get("/schema/openapi.json")).json()
    proof = doc["paths"]["/transactions/{transaction_id}/proof"]["get"]["responses"]
    problem = proof["409"]["content"]["application/problem+json"]["schema"]
    assert "not-sealed-yet" in json.dumps(problem)
    block = doc["paths"]["/journal/blocks/{number}"]["get"]["responses"]
    assert "block-not-found" in json.dumps(block["404"])
    assert doc["paths"]["/journal/head"]["get"]["security"] == [{"bearer": ["journal:read"]}]
