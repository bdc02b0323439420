"""The limits the engine enforces, with their defaults: the one place those
defaults are written. `ledger.settings.Settings` takes them from here (so an
operator still sees and sets every limit as a `LEDGER_*` setting) and
`ledger.app.build_ledger` hands the configured values back."""

from __future__ import annotations

import msgspec


class Limits(msgspec.Struct, frozen=True):
    max_legs: int = 64
    # Stays exact in every JSON client, JavaScript's too.
    max_amount: int = 2**53 - 1
    max_metadata_bytes: int = 4096
    max_metadata_depth: int = 16
    max_description_chars: int = 1024
    max_timeout_seconds: int = 30 * 24 * 3600
    max_idempotency_key_chars: int = 255
    max_page_size: int = 500
    # Postings in one `POST /transactions/batch`.
    max_batch: int = 1000
    default_page_size: int = 50
