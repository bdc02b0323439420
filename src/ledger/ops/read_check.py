"""A reader beside a drill's load: stale balance reads (the kind a replica
serves) in a loop against one service, each recorded with its status and
the server that answered (`Ledger-Read-From`), so the verdict can say
whether reads went on while a database node was down, and from where."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx


@dataclass
class Reader:
    target: str
    api_key: str
    interval: float = 0.05
    # (unix time, status (0: no answer), Ledger-Read-From or "")
    reads: list[tuple[float, int, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Reader:
        self._thread = threading.Thread(target=self._run, name="drill-reader", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        with httpx.Client(base_url=self.target, timeout=5, headers=headers) as client:
            account = None
            while not self._stop.is_set():
                try:
                    if account is None:
                        listed = client.get("/accounts", params={"limit": 1}).json()["items"]
                        account = listed[0]["id"] if listed else None
                        continue
                    got = client.get(
                        f"/accounts/{account}/balance", params={"consistency": "stale"}
                    )
                    self.reads.append(
                        (time.time(), got.status_code, got.headers.get("ledger-read-from", ""))
                    )
                except (httpx.HTTPError, ValueError, KeyError):
                    self.reads.append((time.time(), 0, ""))
                self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


def verdict(reader: Reader, fault_started: float, fault_ended: float) -> dict:
    """Reads before, during and after the fault: how many, how many failed
    (not 200), and which server answered them."""

    def part(lo: float, hi: float) -> dict:
        chosen = [r for r in reader.reads if lo <= r[0] < hi]
        return {
            "reads": len(chosen),
            "failed": sum(1 for _, status, _ in chosen if status != 200),
            "from_replica": sum(1 for *_, source in chosen if source == "replica"),
            "from_primary": sum(1 for *_, source in chosen if source == "primary"),
        }

    return {
        "before": part(0, fault_started),
        "during": part(fault_started, fault_ended),
        "after": part(fault_ended, float("inf")),
    }


def describe(v: dict | None) -> str:
    if not v:
        return "reads: not checked"
    return "reads (before, during and after the fault itself): " + "; ".join(
        f"{when} {p['reads']} ({p['failed']} failed; replica {p['from_replica']}, "
        f"primary {p['from_primary']})"
        for when, p in v.items()
    )
