"""Webhooks under load, for `ledger bench` and `ledger drill`: a receiver on
127.0.0.1 registered as an endpoint of the service before the load, and
afterwards the verdict on what it got: acknowledged postings whose event
never arrived, events out of order, bad signatures, and the delivery lag
from commit to receipt.

The services must allow private addresses for webhooks
(LEDGER_WEBHOOK_ALLOW_PRIVATE): `ledger cluster up` sets it for its own.
Where they do not, the check is skipped and says why.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass

import httpx

from ledger.ops.receiver import Receiver

# How long the check waits after the load for the last events to arrive.
DELIVERY_PATIENCE_SECONDS = 60.0


@dataclass
class Watch:
    receiver: Receiver | None
    target: str
    api_key: str
    webhook_id: str | None = None
    skipped: str | None = None


def start(target: str, api_key: str) -> Watch:
    """Register a receiver as an endpoint of the service at `target`."""
    receiver = Receiver().start()
    watch = Watch(receiver, target, api_key)
    try:
        made = httpx.post(
            f"{target}/webhooks",
            json={"url": receiver.url, "description": "ledger bench/drill receiver"},
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        made = None
        watch.skipped = f"registering the receiver failed: {exc}"
    if made is not None and made.status_code != 201:
        watch.skipped = f"registering the receiver was refused: {made.status_code} {made.text}"
    if watch.skipped is not None:
        receiver.stop()
        watch.receiver = None
        return watch
    assert made is not None
    watch.webhook_id = made.json()["id"]
    receiver.secret = made.json()["secret"]
    return watch


def finish(watch: Watch, acknowledged: set[str], patience: float = DELIVERY_PATIENCE_SECONDS):
    """Wait (up to `patience`) for every acknowledged posting's event, then
    the verdict as a dict, and the endpoint removed."""
    if watch.receiver is None:
        return {"skipped": watch.skipped}
    receiver = watch.receiver
    began = time.monotonic()
    while not acknowledged <= receiver.transaction_ids():
        if time.monotonic() - began > patience:
            break
        time.sleep(0.2)
    waited = time.monotonic() - began
    verdict = receiver.verdict(acknowledged)
    receiver.stop()
    # Should this fail, the endpoint stays; its receiver is gone, so it is
    # disabled in time.
    with contextlib.suppress(httpx.HTTPError):
        httpx.delete(
            f"{watch.target}/webhooks/{watch.webhook_id}",
            headers={"Authorization": f"Bearer {watch.api_key}"},
            timeout=30,
        )
    result = asdict(verdict)
    result["missing_examples"] = result.pop("missing")[:5]
    result["missing"] = len(verdict.missing)
    result["waited_after_load_s"] = round(waited, 1)
    result["refused_at_random"] = receiver.refused
    for q in ("lag_p50", "lag_p99"):
        value = result.pop(q)
        result[f"{q}_s"] = round(value, 3) if value is not None else None
    return result


def failed(result: dict) -> bool:
    """Missing or out-of-order events, or a bad signature (a skipped check
    fails nothing: it says why it was skipped)."""
    if result.get("skipped"):
        return False
    return bool(result["missing"] or result["out_of_order"] or result["bad_signatures"])


def describe(result: dict | None) -> str:
    if not result:
        return "webhooks: not checked"
    if result.get("skipped"):
        return f"webhooks: not checked ({result['skipped']})"
    return (
        f"webhooks: {result['distinct']} events received ({result['duplicates']} again), "
        f"{result['missing']} acknowledged postings never arrived, "
        f"{result['out_of_order']} out of order, {result['bad_signatures']} bad signatures; "
        f"lag from commit p50 {result['lag_p50_s']} s, p99 {result['lag_p99_s']} s"
    )
