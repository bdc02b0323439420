"""API keys in the database: bootstrap makes exactly one key however many
service processes start at once, and only the hash of a key is stored."""

from __future__ import annotations

import asyncio
import hashlib

from sqlalchemy import text

from ledger.app import build_ledger, build_store
from ledger.engine.access import new_key
from support.database import new_database


async def test_many_processes_bootstrapping_at_once_make_one_key(database_url, settings):
    url = new_database(database_url, "ledger_keys")
    # One store (one pool) per "process", each with its own candidate key.
    stores = [build_store(url, settings, application_name=f"boot-{i}") for i in range(6)]
    candidates = [new_key()[1] for _ in stores]
    try:
        made = await asyncio.gather(
            *(
                build_ledger(store, settings).keys.bootstrap(key)
                for store, key in zip(stores, candidates, strict=True)
            )
        )
        winners = [m for m in made if m is not None]
        assert len(winners) == 1
        async with stores[0].engine.connect() as conn:
            rows = (await conn.execute(text("SELECT id, secret_sha256 FROM api_keys"))).all()
            audit = (
                await conn.execute(text("SELECT action, key_name, target FROM audit.log"))
            ).all()
        assert [r.id for r in rows] == [winners[0].id]
        # Only the hash is stored.
        assert bytes(rows[0].secret_sha256) == hashlib.sha256(winners[0].key.encode()).digest()
        assert [tuple(a) for a in audit] == [("key.create", "system:bootstrap", winners[0].id)]
        # A later start makes none.
        assert await build_ledger(stores[0], settings).keys.bootstrap(None) is None
    finally:
        for store in stores:
            await store.dispose()
