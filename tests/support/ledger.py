"""Helpers that act on the ledger as a test's setup: accounts, keys, and a
test client of the app."""

from __future__ import annotations

import contextlib

from ledger.app import create_app
from ledger.engine.access import DIRECT, NewKey
from ledger.engine.ledger import Ledger
from ledger.engine.model import AccountFlags, NewAccount
from ledger.settings import Settings
from support.database import service_url
from support.ids import fresh_id


async def make_key(ledger: Ledger, *scopes: str, client: str = "default", **fields) -> str:
    """A new key with `scopes` (and `accounts=`, `requests_per_second=`)."""
    issued = await ledger.keys.create(
        NewKey(name=fresh_id("key"), client_id=client, scopes=list(scopes), **fields), DIRECT
    )
    return issued.key


@contextlib.asynccontextmanager
async def app_client(database_url: str, settings: Settings, key: str | None = None):
    """A test client of the app; with `key`, every request carries it."""
    from litestar.testing import AsyncTestClient

    async with AsyncTestClient(app=create_app(settings, service_url(database_url, settings))) as c:
        if key is not None:
            c.headers["Authorization"] = f"Bearer {key}"
        yield c


async def open_account(
    ledger: Ledger,
    *,
    currency: str = "USD",
    normal_side: str = "debit",
    flags: AccountFlags | None = None,
    prefix: str = "acct",
    hot: bool = False,
) -> str:
    account, _ = await ledger.accounts.create(
        NewAccount(
            id=fresh_id(prefix),
            currency=currency,
            scale=2,
            normal_side=normal_side,
            flags=flags or AccountFlags(),
            hot=hot,
        )
    )
    return account.id
