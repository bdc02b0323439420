"""What a capacity run measured, in figures, plots and words: the steps of
the load, the rate it sustained, the targets it met or missed."""

from __future__ import annotations

import statistics
import tomllib
from pathlib import Path

from ledger.ops import webhook_check
from ledger.ops.files import package_file


def steps(rows: list[dict], acks: list[tuple[str, str, float]]) -> list[dict]:
    """Per user level: seconds, postings/s (from the acknowledgements'
    times), requests/s, error ratio, median of the per-second p99."""
    times = sorted(t for _, _, t in acks)
    out: list[dict] = []
    for users in sorted({r["users"] for r in rows if r["users"] > 0}):
        level = [r for r in rows if r["users"] == users]
        start, end = level[0]["t"], level[-1]["t"] + 1
        before = [r for r in rows if r["t"] < start]
        base_req = before[-1]["requests"] if before else 0
        base_fail = before[-1]["failures"] if before else 0
        requests = level[-1]["requests"] - base_req
        failures = level[-1]["failures"] - base_fail
        seconds = end - start
        postings = sum(1 for t in times if start <= t < end)
        out.append(
            {
                "users": users,
                "seconds": seconds,
                "postings_per_second": postings / seconds if seconds else 0,
                "requests_per_second": requests / seconds if seconds else 0,
                "error_ratio": failures / requests if requests else 0,
                "p50_ms": statistics.median(r["p50"] for r in level),
                "p95_ms": statistics.median(r["p95"] for r in level),
                "p99_ms": statistics.median(r["p99"] for r in level),
            }
        )
    return out


def knee(levels: list[dict], p99_ms: float, max_errors: float) -> dict | None:
    """The highest user level whose p99 and errors stayed within the targets
    (at least 3 seconds long): what the system sustains."""
    good = [
        s
        for s in levels
        if s["seconds"] >= 3 and s["p99_ms"] <= p99_ms and s["error_ratio"] <= max_errors
    ]
    return max(good, key=lambda s: s["postings_per_second"]) if good else None


def plot(out: Path, rows: list[dict], levels: list[dict], acks, p99_ms: float) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return []
    t0 = rows[0]["t"]
    seconds = [r["t"] - t0 for r in rows]
    per_second: dict[int, int] = {}
    for _, _, t in acks:
        per_second[int(t) - t0] = per_second.get(int(t) - t0, 0) + 1
    files = []

    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.plot(seconds, [per_second.get(s, 0) for s in seconds], label="postings/s acknowledged")
    # Locust's workers report every few seconds: requests/s over a 3 s window.
    requests = [
        (rows[i]["requests"] - rows[max(0, i - 3)]["requests"]) / max(1, min(i, 3))
        for i in range(len(rows))
    ]
    ax.plot(seconds, requests, label="requests/s (3 s window)", alpha=0.6)
    ax.set_xlabel("seconds")
    ax.set_ylabel("per second")
    users = ax.twinx()
    users.plot(seconds, [r["users"] for r in rows], color="grey", linestyle="--", label="users")
    users.set_ylabel("users")
    ax.legend(loc="upper left")
    ax.set_title("Throughput over time")
    fig.tight_layout()
    fig.savefig(out / "throughput.png")
    files.append("throughput.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for key in ("p50", "p95", "p99"):
        ax.plot(seconds, [r[key] for r in rows], label=key)
    ax.axhline(p99_ms, color="red", linestyle=":", label=f"p99 target {p99_ms:g} ms")
    ax.set_xlabel("seconds")
    ax.set_ylabel("ms")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("Latency over time")
    fig.tight_layout()
    fig.savefig(out / "latency.png")
    files.append("latency.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot([s["postings_per_second"] for s in levels], [s["p99_ms"] for s in levels], marker="o")
    for s in levels:
        ax.annotate(str(s["users"]), (s["postings_per_second"], s["p99_ms"]), fontsize=7)
    ax.axhline(p99_ms, color="red", linestyle=":", label=f"p99 target {p99_ms:g} ms")
    ax.set_xlabel("postings/s")
    ax.set_ylabel("p99 ms (per user level; labels: users)")
    ax.legend()
    ax.set_title("Latency against throughput")
    fig.tight_layout()
    fig.savefig(out / "latency_vs_throughput.png")
    files.append("latency_vs_throughput.png")
    plt.close(fig)
    return files


def load_targets(shape: str) -> dict:
    path = package_file("targets.toml")
    if not path.exists():
        return {}
    with open(path, "rb") as f:
        return tomllib.load(f).get(shape, {})


def judge(summary: dict, targets: dict) -> list[str]:
    """The targets missed, in words (empty: all met)."""
    missed = []
    ratio = summary.get("ratio_to_baseline")
    if "min_ratio" in targets and (ratio is None or ratio < targets["min_ratio"]):
        missed.append(f"sustained/baseline {ratio} below {targets['min_ratio']}")
    p99 = summary.get("sustained", {}).get("p99_ms") if summary.get("sustained") else None
    if "max_p99_ms" in targets and (p99 is None or p99 > targets["max_p99_ms"]):
        missed.append(f"p99 at the sustained rate {p99} ms above {targets['max_p99_ms']} ms")
    if "max_error_rate" in targets and summary["error_rate"] > targets["max_error_rate"]:
        missed.append(f"error rate {summary['error_rate']:.4f} above {targets['max_error_rate']}")
    return missed


def format_summary(summary: dict) -> str:
    lines = [f"shape {summary['shape']}: {summary['acknowledged_postings']} postings acknowledged"]
    for s in summary["steps"]:
        lines.append(
            f"  {s['users']:4d} users  {s['postings_per_second']:7.1f} postings/s  "
            f"p50 {s['p50_ms']:6.1f}  p99 {s['p99_ms']:7.1f} ms  errors {s['error_ratio']:.4f}"
        )
    best = summary["sustained"]
    if best:
        lines.append(
            f"sustained: {best['postings_per_second']:.1f} postings/s at {best['users']} users, "
            f"p99 {best['p99_ms']:.1f} ms (target {summary['p99_target_ms']:g} ms)"
        )
    else:
        lines.append(f"sustained: no user level kept p99 under {summary['p99_target_ms']:g} ms")
    baseline = summary["baseline"]
    if baseline:
        lines.append(
            f"raw database (pgbench, same SQL work): {baseline['tps']:.0f} tps; "
            f"ratio {summary['ratio_to_baseline']}"
        )
    lines.append(
        f"error rate {summary['error_rate']:.4f}, database retries per commit "
        f"{summary['retry_rate']:.4f}"
    )
    a = summary["audit"]
    lines.append(
        f"audit: {a['acknowledged']} acknowledged, {a['missing']} missing, "
        f"{a['duplicated']} twice, {a['mismatched']} under another id; "
        f"verify {'clean' if a['verify_ok'] else 'FAILED'}"
    )
    sealed = a.get("sealing")
    if sealed:
        lines.append(
            f"sealing: {sealed['sealed']} transactions sealed, lag from start to sealed block "
            f"p50 {sealed['p50_s']} s, p99 {sealed['p99_s']} s, max {sealed['max_s']} s; "
            f"{sealed['unsealed']} never sealed"
        )
    journal = a.get("journal")
    if journal:
        lines.append(
            f"journal: {journal['blocks']} blocks verified, "
            f"{'chain intact' if journal['ok'] else 'BROKEN'}"
        )
    if "webhooks" in a:
        lines.append(webhook_check.describe(a["webhooks"]))
    for missed in summary["targets_missed"]:
        lines.append(f"TARGET MISSED: {missed}")
    return "\n".join(lines)
