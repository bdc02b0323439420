"""What a capacity run measured, in figures, plots and words: the steps of
the load, the rate it sustained, the targets it met or missed."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from ledger.ops import cpu, webhook_check
from ledger.ops.files import package_file


def knee(
    levels: list[dict], p99_ms: float, max_errors: float, min_seconds: float = 3
) -> dict | None:
    """The step with the most postings/s whose p99 and errors stayed within
    the targets (at least `min_seconds` long): what the system sustains."""
    good = [
        s
        for s in levels
        if s["seconds"] >= min_seconds and s["p99_ms"] <= p99_ms and s["error_ratio"] <= max_errors
    ]
    return max(good, key=lambda s: s["postings_per_second"]) if good else None


def plot(out: Path, seconds: list[dict], levels: list[dict], p99_ms: float) -> list[str]:
    """Throughput and latency second by second, each step's own figures as a
    bar across its window (the very numbers of the summary's steps), and
    latency against throughput per step. Writes what it draws to
    `plotted.json` as well."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not seconds:
        return []
    t0 = levels[0]["start"] if levels else 0.0
    xs = [r["t"] for r in seconds]
    bars = [
        {
            "users": s["users"],
            "from_s": round(s["start"] - t0, 3),
            "to_s": round(s["end"] - t0, 3),
            "postings_per_second": s["postings_per_second"],
            "requests_per_second": s["requests_per_second"],
            "p99_ms": s["p99_ms"],
            "cpu_ms_per_posting": s.get("cpu_ms_per_posting"),
        }
        for s in levels
    ]
    (out / "plotted.json").write_text(json.dumps({"per_second": seconds, "steps": bars}, indent=1))
    return [
        _throughput(plt, out, xs, seconds, bars),
        _latency(plt, out, xs, seconds, bars, p99_ms),
        _latency_against_throughput(plt, out, levels, p99_ms),
        *(
            [_cpu_per_posting(plt, out, levels)]
            if any(s.get("cpu_ms_per_posting") for s in levels)
            else []
        ),
    ]


def _throughput(plt, out: Path, xs: list, seconds: list[dict], bars: list[dict]) -> str:
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.plot(xs, [r["postings_per_second"] for r in seconds], label="postings/s", lw=0.8)
    ax.plot(xs, [r["requests_per_second"] for r in seconds], label="requests/s", lw=0.8, alpha=0.6)
    for i, b in enumerate(bars):
        ax.hlines(b["postings_per_second"], b["from_s"], b["to_s"], colors="C0", lw=2.5,
                  label="postings/s over the step" if i == 0 else None)  # fmt: skip
    users = ax.twinx()
    if bars:  # each level held from its step's start to its end, the last one included
        users.step([b["from_s"] for b in bars] + [bars[-1]["to_s"]],
                   [b["users"] for b in bars] + [bars[-1]["users"]], where="post",
                   color="grey", linestyle="--")  # fmt: skip
    users.set_ylabel("users")
    ax.set_xlabel("seconds since the first step")
    ax.set_ylabel("per second")
    ax.legend(loc="upper left")
    ax.set_title("Throughput")
    return _save(fig, out, "throughput.png")


def _latency(plt, out: Path, xs: list, seconds: list[dict], bars: list[dict], p99_ms: float):
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        ax.plot(xs, [r[key] or None for r in seconds], label=f"{key[:3]} each second", lw=0.8)
    for i, b in enumerate(bars):
        ax.hlines(b["p99_ms"], b["from_s"], b["to_s"], colors="C2", lw=2.5,
                  label="p99 over the step" if i == 0 else None)  # fmt: skip
    ax.axhline(p99_ms, color="red", linestyle=":", label=f"p99 target {p99_ms:g} ms")
    ax.set_xlabel("seconds since the first step")
    ax.set_ylabel("ms")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("Latency")
    return _save(fig, out, "latency.png")


def _latency_against_throughput(plt, out: Path, levels: list[dict], p99_ms: float) -> str:
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot([s["postings_per_second"] for s in levels], [s["p99_ms"] for s in levels], marker="o")
    for s in levels:
        ax.annotate(str(s["users"]), (s["postings_per_second"], s["p99_ms"]), fontsize=7)
    ax.axhline(p99_ms, color="red", linestyle=":", label=f"p99 target {p99_ms:g} ms")
    ax.set_xlabel("postings/s")
    ax.set_ylabel("p99 ms (per step; labels: users)")
    ax.legend()
    ax.set_title("Latency against throughput")
    return _save(fig, out, "latency_vs_throughput.png")


def _cpu_per_posting(plt, out: Path, levels: list[dict]) -> str:
    """Each step's CPU-ms per posting, stacked by kind of process."""
    costed = [s for s in levels if s.get("cpu_ms_per_posting")]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = list(range(len(costed)))
    bottom = [0.0] * len(costed)
    for kind in cpu.KINDS:
        heights = [s["cpu_ms_per_posting"][kind] for s in costed]
        ax.bar(xs, heights, bottom=bottom, label=kind)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.set_xticks(xs, [str(s["users"]) for s in costed])
    ax.set_xlabel("users (one bar per step)")
    ax.set_ylabel("CPU ms per posting (= cores per 1,000 postings/s)")
    ax.legend()
    ax.set_title("Where a posting's CPU goes")
    return _save(fig, out, "cpu_per_posting.png")


def _save(fig, out: Path, name: str) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(out / name)
    plt.close(fig)
    return name


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
    if "max_retry_rate" in targets and summary["retry_rate"] > targets["max_retry_rate"]:
        missed.append(
            f"database retries per commit {summary['retry_rate']:.4f} above "
            f"{targets['max_retry_rate']}"
        )
    if "max_error_rate" in targets and summary["error_rate"] > targets["max_error_rate"]:
        missed.append(f"error rate {summary['error_rate']:.4f} above {targets['max_error_rate']}")
    return missed


def format_summary(summary: dict) -> str:
    outside = summary.get("acknowledged_outside_steps")
    lines = [
        f"shape {summary['shape']}: {summary['acknowledged_postings']} postings acknowledged"
        + (
            f", {outside} of them between or after the steps (audited, in no step's figures)"
            if outside
            else ""
        )
    ]
    for s in summary["steps"]:
        lines.append(
            f"  {s['users']:4d} users {s['seconds']:5.1f} s  {s['postings_per_second']:7.1f} "
            f"postings/s  {s['requests_per_second']:7.1f} requests/s  p50 {s['p50_ms']:6.1f}  "
            f"p95 {s['p95_ms']:6.1f}  p99 {s['p99_ms']:7.1f} ms  errors {s['error_ratio']:.4f}"
        )
    lines.append(f"load stopped: {summary['stopped_because']}")
    phases = summary.get("phases_s")
    if phases:
        parts = ", ".join(f"{name} {seconds:g} s" for name, seconds in phases.items())
        lines.append(f"the run took {summary.get('duration_s', 0):g} s: {parts}")
    cost = summary.get("cpu_ms_per_posting")
    if cost:
        parts = ", ".join(f"{k} {cost[k]:.2f}" for k in cpu.KINDS)
        lines.append(
            f"CPU per posting at the sustained step: {parts}; total {cost['total']:.2f} ms, "
            f"so {cost['total']:.2f} cores per 1,000 postings/s"
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
