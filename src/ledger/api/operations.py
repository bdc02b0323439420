"""Handlers for operators and their tools: liveness, readiness, metrics."""

from __future__ import annotations

import os

from litestar import Response, Router, get
from litestar.datastructures import State
from litestar.params import FromQuery
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ledger.api import request as req
from ledger.api.access import public, requires
from ledger.engine.access import METRICS_READ
from ledger.engine.reconcile.model import CLASSES, SEVERITIES
from ledger.settings import Settings


@get("/health", tags=["operations"], **public())
async def health(state: State, ledger: req.LedgerDep, ready: FromQuery[int] = 0) -> Response[dict]:
    """Process up. With `?ready=1` (what HAProxy asks), the same as /ready."""
    if ready:
        return await _readiness(state, ledger)
    return Response({"status": "ok"})


@get("/ready", tags=["operations"], **public())
async def ready_endpoint(state: State, ledger: req.LedgerDep) -> Response[dict]:
    """The database answers, and the process is not shutting down."""
    return await _readiness(state, ledger)


async def _readiness(state: State, ledger: req.LedgerDep) -> Response[dict]:
    if getattr(state, "draining", False):
        return Response({"status": "draining"}, status_code=503)
    if await ledger.ready():
        return Response({"status": "ready"})
    return Response({"status": "database unreachable"}, status_code=503)


# Litestar adds the charset to a text/ media type itself.
_METRICS_MEDIA = CONTENT_TYPE_LATEST.replace("; charset=utf-8", "")


@get("/metrics", tags=["operations"], media_type=_METRICS_MEDIA, **requires(METRICS_READ))
async def metrics(ledger: req.LedgerDep) -> Response[bytes]:
    """Prometheus metrics (the text exposition format). Prometheus sends the
    key as a bearer token (`authorization: {credentials: <key>}` in its
    scrape config). With `LEDGER_BACKGROUND_PROCESS`, the background
    process's metrics are added in (prometheus_client's multiprocess mode)."""
    gauges = await _reconciliation(ledger)
    return Response(generate_latest(_registry()) + gauges, media_type=_METRICS_MEDIA)


async def _reconciliation(ledger: req.LedgerDep) -> bytes:
    """Open reconciliation exceptions by class and severity, read from the
    database at each scrape (every process answers the same), zeros
    included, so an alert on a class never sees a missing series."""
    counts = {(c, s): n for c, s, n in await ledger.reconciliation.open_counts()}
    family = GaugeMetricFamily(
        "ledger_reconciliation_open_exceptions",
        "Open reconciliation exceptions, by class and severity",
        labels=["class", "severity"],
    )
    for cls in CLASSES:
        for severity in SEVERITIES:
            family.add_metric([cls, severity], counts.get((cls, severity), 0))
    registry = CollectorRegistry()
    registry.register(_Fixed([family]))
    return generate_latest(registry)


class _Fixed(Collector):
    def __init__(self, families: list) -> None:
        self.families = families

    def collect(self):
        return self.families


def _registry() -> CollectorRegistry:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def router(settings: Settings) -> Router:
    """Health, readiness and metrics."""
    return Router(path="/", route_handlers=[health, ready_endpoint, metrics])
