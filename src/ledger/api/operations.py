"""Handlers for operators and their tools: liveness, readiness, metrics."""

from __future__ import annotations

import os

from litestar import Response, get
from litestar.datastructures import State
from litestar.params import FromQuery
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from ledger.api import request as req
from ledger.api.access import public, requires
from ledger.engine.access import METRICS_READ


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
async def metrics() -> Response[bytes]:
    """Prometheus metrics (the text exposition format). Prometheus sends the
    key as a bearer token (`authorization: {credentials: <key>}` in its
    scrape config). With `LEDGER_BACKGROUND_PROCESS`, the background
    process's metrics are added in (prometheus_client's multiprocess mode)."""
    return Response(generate_latest(_registry()), media_type=_METRICS_MEDIA)


def _registry() -> CollectorRegistry:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


HANDLERS = [health, ready_endpoint, metrics]
