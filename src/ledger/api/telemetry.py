"""What the service tells its operators beyond its answers: request
metrics on /metrics (Litestar's Prometheus middleware), one JSON access
log line per request, and OpenTelemetry traces of HTTP requests and
database calls when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (Litestar's
OpenTelemetry plugin, psycopg's instrumentation, the OTLP/HTTP exporter;
the standard `OTEL_*` variables configure them)."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from litestar.plugins.prometheus import PrometheusConfig

from ledger.settings import Settings

log = logging.getLogger(__name__)

# Seconds; finer at the low end, where a posting's latency lives.
LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
ACCESS_LOGGER = "ledger.access"


def prometheus() -> PrometheusConfig:
    """`ledger_http_requests_total` and `ledger_http_request_duration_seconds`
    by method, route template (not the raw path: ids would make every
    request its own series) and status."""
    return PrometheusConfig(
        app_name="ledger",
        prefix="ledger_http",
        group_path=True,
        buckets=LATENCY_BUCKETS,
        exclude_unhandled_paths=True,
    )


def tracing_plugins() -> list[Any]:
    """Litestar's OpenTelemetry plugin, with a tracer provider exporting
    over OTLP/HTTP, and psycopg instrumented for database spans; nothing
    when `OTEL_EXPORTER_OTLP_ENDPOINT` is not set."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return []
    try:
        from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise RuntimeError(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set, but the OpenTelemetry packages are not "
            "installed: pip install 'ledger[otel]'"
        ) from exc

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "ledger")})
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
    instrumentor = PsycopgInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=provider)
    config = OpenTelemetryConfig(
        tracer_provider=provider,
        exclude=["^/metrics$", "^/health$", "^/ready$"],
        http_capture_headers_sanitize_fields=["authorization"],
    )
    return [OpenTelemetryPlugin(config)]


def configure_access_log(settings: Settings) -> None:
    """One JSON line per request on standard output (the `ledger.access`
    logger; the line is made in `api.middleware`)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.propagate = False
    logger.handlers.clear()
    if not settings.access_log:
        logger.disabled = True
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
