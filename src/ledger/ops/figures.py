"""The one source of a capacity run's figures: the request log the Locust
workers write (every request's end time, latency and success) and the
acknowledgement log (every acknowledged posting's time), cut into the
windows of the step log the step-load shape writes. The step-load shape
judges a step with `window()`, the report computes every step, the plots
and the summary with the same functions over the same files, so no two
figures of one run come from different sources.

Request log lines: "<end unix time> <latency ms> <1 ok | 0 failed>".
Step log lines, JSON: {"event": "step", "n", "users", "start"}, then
{"event": "judged", "n", "start", "end", "p99_ms", "error_ratio", "broke"}
when a step's time is up, and once {"event": "stop", "at", "reason"}."""

from __future__ import annotations

import bisect
import json
import math
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Request:
    end: float
    ms: float
    ok: bool


@dataclass
class Step:
    n: int
    users: int
    start: float
    end: float | None = None  # set when judged, or by the stop
    judged: dict | None = None


@dataclass
class StepLog:
    steps: list[Step] = field(default_factory=list)
    stop_at: float | None = None
    stop_reason: str = "the load did not say why it stopped"


def read_requests(path: Path) -> list[Request]:
    """The request log, sorted by end time (workers append in batches)."""
    found = []
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3:
                found.append(Request(float(parts[0]), float(parts[1]), parts[2] == "1"))
    found.sort(key=lambda r: r.end)
    return found


def read_steps(path: Path) -> StepLog:
    log = StepLog()
    if not path.exists():
        return log
    for line in path.read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "step":
            log.steps.append(Step(event["n"], event["users"], event["start"]))
        elif event["event"] == "judged" and log.steps:
            log.steps[-1].end = event["end"]
            log.steps[-1].judged = event
        elif event["event"] == "stop":
            log.stop_at, log.stop_reason = event["at"], event["reason"]
    if log.steps and log.steps[-1].end is None:
        log.steps[-1].end = log.stop_at
    return log


def percentile(ordered: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q of all at or below."""
    if not ordered:
        return 0.0
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def between(requests: list[Request], start: float, end: float) -> list[Request]:
    ends = [r.end for r in requests]
    return requests[bisect.bisect_left(ends, start) : bisect.bisect_left(ends, end)]


def window(
    requests: list[Request], ack_times: list[float], start: float, end: float
) -> dict[str, float]:
    """A window's figures: requests and postings per second, the error
    ratio, and p50/p95/p99 over every request that ended in it."""
    seconds = max(end - start, 1e-9)
    inside = between(requests, start, end)
    latencies = sorted(r.ms for r in inside)
    failed = sum(not r.ok for r in inside)
    postings = bisect.bisect_left(ack_times, end) - bisect.bisect_left(ack_times, start)
    return {
        "seconds": round(end - start, 3),
        "requests": len(inside),
        "postings": postings,
        "requests_per_second": len(inside) / seconds,
        "postings_per_second": postings / seconds,
        "error_ratio": failed / len(inside) if inside else 0.0,
        "p50_ms": percentile(latencies, 0.50),
        "p95_ms": percentile(latencies, 0.95),
        "p99_ms": percentile(latencies, 0.99),
    }


def steps(log: StepLog, requests: list[Request], ack_times: list[float]) -> list[dict]:
    """Every step's figures over its own window (from the moment its users
    were set to the moment it was judged or the load stopped)."""
    out = []
    for step in log.steps:
        if step.end is None or step.end <= step.start:
            continue
        figures = window(requests, ack_times, step.start, step.end)
        out.append({"users": step.users, "start": step.start, "end": step.end, **figures})
    return out


def per_second(
    requests: list[Request], ack_times: list[float], start: float, end: float
) -> list[dict]:
    """Second by second from `start` to `end`: what the throughput and
    latency plots draw."""
    rows = []
    for i in range(math.ceil(end - start)):
        a, b = start + i, min(start + i + 1, end)
        rows.append({"t": i, **window(requests, ack_times, a, b)})
    return rows
