"""One frozen Settings object, read from the environment once.

Every limit the service enforces is a named field here, so an operator can see
them all in one place and change them with a `LEDGER_*` environment variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

from ledger.engine.limits import Limits
from ledger.engine.webhook_model import DeliverySettings

# The engine's limits and the deliverer's settings carry their own defaults
# (`ledger.engine.limits`, `ledger.engine.delivery`): the fields below take
# them from there, so each default is written once.
_LIMITS = Limits()
_DELIVERY = DeliverySettings()


@dataclass(frozen=True, slots=True)
class Settings:
    # Where the database is. Empty means: start the embedded PostgreSQL in `data_dir`.
    database_url: str = ""
    data_dir: Path = Path(".ledger/pgdata")
    # The role the service writes with. It has INSERT and SELECT on the journal
    # and nothing more there; the migration creates it. Empty disables SET ROLE
    # (for a login user that already is that role).
    db_role: str = "ledger_writer"
    # The owner's URL, for `ledger serve --migrate` when the service's own
    # login (LEDGER_DATABASE_URL, the writer role) may not change the schema.
    migrate_database_url: str = ""

    host: str = "127.0.0.1"
    port: int = 8000
    # Seconds SIGTERM waits for in-flight requests before it closes them.
    shutdown_grace_seconds: float = 15.0

    # Limits on what a request may ask for: the engine's (see `limits()`)...
    max_legs: int = _LIMITS.max_legs
    max_amount: int = _LIMITS.max_amount
    max_metadata_bytes: int = _LIMITS.max_metadata_bytes
    max_metadata_depth: int = _LIMITS.max_metadata_depth
    max_description_chars: int = _LIMITS.max_description_chars
    max_timeout_seconds: int = _LIMITS.max_timeout_seconds
    max_idempotency_key_chars: int = _LIMITS.max_idempotency_key_chars
    max_page_size: int = _LIMITS.max_page_size
    default_page_size: int = _LIMITS.default_page_size
    max_batch: int = _LIMITS.max_batch
    # ... and the HTTP layer's (a batch's body has its own).
    max_body_bytes: int = 64 * 1024
    max_batch_body_bytes: int = 8 * 1024 * 1024
    # A reconciliation statement file (100,000 camt.053 entries are ~60 MiB).
    max_statement_bytes: int = 128 * 1024 * 1024
    # A request's line and headers together, and how many header fields it
    # may carry (more is answered 431 by the server, before the app).
    max_head_bytes: int = 16 * 1024
    max_headers: int = 100

    # The sweeper that voids pending transactions past their timeout runs in
    # every service process (no leader: each expiry happens once anyway).
    # 0 turns it off in this process.
    expiry_sweep_seconds: float = 1.0
    expiry_batch: int = 100

    # The compactor that folds hot accounts' deltas into snapshots runs in
    # every service process (no leader: the database admits each snapshot
    # once). It folds an account's deltas once it has `hot_compact_deltas` of
    # them or one older than `hot_compact_seconds`; 0 seconds turns it off
    # in this process. Deltas younger than the grace are left for the next
    # fold, so that a posting still in flight rarely commits under a
    # snapshot's watermark (which would only make `as_of` skip that snapshot).
    hot_compact_seconds: float = 1.0
    hot_compact_deltas: int = 1000
    hot_snapshot_grace_seconds: float = 1.0
    hot_compact_batch: int = 100

    # The sequencer that seals committed transactions into the hash-chained
    # journal runs in every service process (no leader: the database admits
    # each block once). It seals every `seal_seconds` (0 turns it off in
    # this process), at most `seal_max` transactions a block.
    # `seal_lookback_seconds` (CockroachDB only) is the longest a posting's
    # transaction may stay open: the sequencer's read looks back that far.
    seal_seconds: float = 0.2
    seal_max: int = 1000
    # A replica for reads that feed no decision (stale reads, statements,
    # reports, search): PostgreSQL standbys (a multi-host URL with
    # target_session_attrs=prefer-standby), or CockroachDB (follower reads).
    # When it does not answer, those reads go to the primary, or with
    # `read_fallback` false are answered 503.
    read_database_url: str | None = None
    read_fallback: bool = True
    # The continuous verifier: every `verify_seconds` (0: off in this
    # process) the next `verify_sample` accounts' cached balances are
    # recomputed from the journal, read-only (gauges ledger_verify_*).
    verify_seconds: float = 5.0
    verify_sample: int = 500
    seal_lookback_seconds: float = 300.0
    # An inclusion proof carries at most this many blocks of the chain to
    # the head; beyond them, `GET /journal/blocks` continues it.
    proof_max_blocks: int = 1000

    # Run those loops (and the webhook deliverer below) in a child process
    # of `ledger serve` instead of its request loop, where requests in
    # flight delay them (see `ledger.background`). The service's /metrics
    # then adds up both processes' (prometheus_client's multiprocess mode).
    background_process: bool = False

    # Events (`GET /events`, `/events/stream`): how often a process reads
    # the journal's head while a long poll or a stream waits (one reader
    # per process, however many wait), and how long a quiet stream goes
    # before a heartbeat.
    events_poll_seconds: float = 0.1
    events_heartbeat_seconds: float = 15.0
    # A stream ends by itself after this long (a browser's EventSource, or
    # any client that resumes with Last-Event-ID, reconnects), so a draining
    # service is never held open by its streams for long.
    events_stream_seconds: float = 300.0
    # Webhooks. Every process runs a deliverer (0 claim seconds turns it
    # off here); each endpoint is served by one process at a time, which
    # holds its lease in the database and renews it while it delivers.
    webhook_claim_seconds: float = _DELIVERY.claim_seconds
    webhook_lease_seconds: float = _DELIVERY.lease_seconds
    webhook_max_endpoints: int = _DELIVERY.max_endpoints
    # A receiver gets this long to answer; failures are retried with
    # backoff from base to cap; an endpoint failing for longer than
    # `webhook_disable_after_seconds` (or answering 410) is disabled.
    webhook_timeout_seconds: float = 10.0
    webhook_backoff_base_seconds: float = _DELIVERY.backoff_base_seconds
    webhook_backoff_cap_seconds: float = _DELIVERY.backoff_cap_seconds
    webhook_disable_after_seconds: float = _DELIVERY.disable_after_seconds
    # Delivery attempts are logged for this long.
    webhook_retention_seconds: float = _DELIVERY.retention_seconds
    # After a rotation the old secret signs too, this long.
    webhook_rotation_overlap_seconds: float = 86_400.0
    # Webhook URLs must resolve to public addresses, over https: private,
    # loopback and link-local ones (and plain http) only when this is set.
    webhook_allow_private: bool = False

    # Access control. A key's row is cached in each process this long: a
    # revoked key stops working everywhere within it.
    key_cache_seconds: float = 5.0
    # Failed authentications one source address may make per minute with
    # one key id (and, apart, with unknown ones) before those failing
    # requests get 429 instead of 401; a valid key is never refused for them.
    auth_failures_per_minute: int = 30
    # Proxies (comma-separated CIDRs) whose X-Forwarded-For / Forwarded
    # headers name the client's address, for those limits and the audit
    # row's `source`; empty: the peer address is the client's.
    trusted_proxies: str = ""
    # When the database holds no key, `ledger serve` makes an admin key:
    # this one if set (lk_<id>_<secret>), else a random one written to
    # `bootstrap_key_file` (default: admin-key next to the data directory).
    bootstrap_key: str = ""
    bootstrap_key_file: Path = Path("")
    # Origins allowed to call from a browser, comma-separated; empty: CORS off.
    cors_origins: str = ""
    # Serve the API documentation under /schema (public: it describes the
    # API and holds no data); off removes it.
    docs: bool = True
    # One JSON line per request on standard output (`ledger serve`).
    access_log: bool = True

    # The connection pool.
    pool_size: int = 10
    pool_max_overflow: int = 0
    pool_timeout_seconds: float = 10.0
    # Connections are replaced after this long, so that behind a load balancer
    # they spread again over CockroachDB nodes that restarted or joined.
    pool_recycle_seconds: float = 1800.0
    statement_timeout_ms: int = 10_000

    # The retry loop around one database transaction.
    retry_attempts: int = 30
    retry_base_seconds: float = 0.002
    retry_cap_seconds: float = 0.2

    def key_file(self) -> Path:
        """Where a bootstrap key made at random is written."""
        if str(self.bootstrap_key_file) not in ("", "."):
            return self.bootstrap_key_file
        return self.data_dir.parent / "admin-key"

    def delivery(self) -> DeliverySettings:
        """The webhook deliverer's settings as configured here."""
        return DeliverySettings(
            **{
                name: getattr(self, f"webhook_{name}")
                for name in DeliverySettings.__struct_fields__
                if hasattr(self, f"webhook_{name}")
            }
        )

    def limits(self) -> Limits:
        """The engine's limits as configured here."""
        return Limits(**{name: getattr(self, name) for name in Limits.__struct_fields__})

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with the given fields replaced; None values are ignored."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Read every field from `LEDGER_<FIELD>` where it is set."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"LEDGER_{f.name.upper()}")
            if raw is None:
                continue
            default = f.default
            if isinstance(default, bool):
                values[f.name] = raw.strip().lower() in {"1", "true", "yes", "on"}
            elif isinstance(default, int):
                values[f.name] = int(raw)
            elif isinstance(default, float):
                values[f.name] = float(raw)
            elif isinstance(default, Path):
                values[f.name] = Path(raw)
            else:
                values[f.name] = raw
        return cls(**values)
