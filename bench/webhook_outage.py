"""Webhook delivery under load and through a receiver's outage: the lag
from commit to receipt while the receiver is up (the baseline, in the same
run), then a receiver down for a minute while postings go on, and how long
after it comes back it has every event it missed, in order, signed.

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/webhook_outage.py

One invocation:
1. starts its own embedded PostgreSQL and one `ledger serve` (webhooks to
   127.0.0.1 allowed, every other setting at its default: the backoff caps
   at 60 s);
2. registers a receiver on 127.0.0.1 (`ledger.ops.receiver`: it checks
   every signature with the `standardwebhooks` package);
3. posts from C clients for T seconds with the receiver up: postings/s,
   and the delivery lag p50/p99;
4. takes the receiver down (503) for D seconds (60) while the same load
   goes on, brings it back and waits for every acknowledged posting's
   event: the catch-up time, and events missing, out of order, or badly
   signed (all must be 0).

The load runs in a process of its own, so that neither it nor the
receiver (a threaded server in this one) takes the other's CPU.

It asserts nothing about speed: it measures; it exits 1 if an event is
missing, out of order or badly signed.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import time

import httpx

import harness
from harness import AUTHORIZATION, post_load, seed, served
from ledger.ops.receiver import Receiver


def register(base: str, receiver: Receiver) -> str:
    made = httpx.post(
        f"{base}/webhooks", json={"url": receiver.url}, headers=AUTHORIZATION, timeout=30
    )
    made.raise_for_status()
    receiver.secret = made.json()["secret"]
    return made.json()["id"]


def wait_for(receiver: Receiver, ids: list[str], patience: float) -> float | None:
    began = time.monotonic()
    while not set(ids) <= receiver.transaction_ids():
        if time.monotonic() - began > patience:
            return None
        time.sleep(0.1)
    return time.monotonic() - began


def _load(base: str, accounts: list[str], clients: int, tag: str, seconds: float, auth):
    # The child imported `harness` anew, with a key of its own: use ours.
    harness.AUTHORIZATION.update(auth)
    acknowledged: list[str] = []
    figures = asyncio.run(
        post_load(
            base,
            lambda rng: tuple(rng.sample(accounts, 2)),
            clients,
            tag=tag,
            seconds=seconds,
            acknowledged=acknowledged,
        )
    )
    return figures, acknowledged


def load(base: str, accounts: list[str], clients: int, tag: str, seconds: float):
    """`post_load` in a child process: (its figures, the acknowledged ids)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_load, (base, accounts, clients, tag, seconds, AUTHORIZATION))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--outage", type=int, default=60)
    args = parser.parse_args()

    receiver = Receiver().start()
    env = {"LEDGER_WEBHOOK_ALLOW_PRIVATE": "1", "LEDGER_ACCESS_LOG": "0"}
    with served(args.clients, "ledger-webhook-", env) as (base, _embedded, _env):
        accounts = asyncio.run(seed(base, args.accounts))
        register(base, receiver)

        load_up, up = load(base, accounts, args.clients, "up", args.seconds)
        settled = wait_for(receiver, up, 120)
        baseline = receiver.verdict(set(up))

        receiver.down = True
        during, down = load(base, accounts, args.clients, "down", args.outage)
        refused = receiver.refused
        receiver.down = False
        caught_up = wait_for(receiver, down, 300)
        after = receiver.verdict(set(up) | set(down))
    receiver.stop()

    print(
        f"load ({args.clients} clients): {load_up['postings_per_second']:.0f} postings/s "
        f"while the receiver is up, {during.get('postings_per_second', 0):.0f} while down"
    )
    print(
        f"receiver up: {len(up)} events, all arrived {settled:.1f} s after the load "
        if settled is not None
        else "receiver up: NOT all events arrived",
        end="",
    )
    print(
        f"(lag from commit p50 {baseline.lag_p50:.3f} s, p99 {baseline.lag_p99:.3f} s)"
        if baseline.lag_p50 is not None
        else ""
    )
    print(
        f"receiver down {args.outage} s: {len(down)} postings acknowledged meanwhile, "
        f"{refused} deliveries refused"
    )
    print(
        "caught up "
        + (
            f"{caught_up:.1f} s after it came back"
            if caught_up is not None
            else "NEVER within 300 s"
        )
    )
    print(
        f"verdict: {after.distinct} events, {after.duplicates} again, "
        f"{len(after.missing)} missing, {after.out_of_order} out of order, "
        f"{after.bad_signatures} bad signatures"
    )
    ok = not after.missing and not after.out_of_order and not after.bad_signatures
    return 0 if ok else 1  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
