"""HTTP handler for the currencies in use (scope `accounts:read`)."""

from __future__ import annotations

from litestar import Router, get

from ledger.api import request as req
from ledger.api.access import requires
from ledger.engine.access import ACCOUNTS_READ
from ledger.engine.currencies import CurrencyScale
from ledger.engine.model import Page
from ledger.settings import Settings


@get("/currencies", tags=["accounts"], **requires(ACCOUNTS_READ))
async def list_currencies(ledger: req.LedgerDep) -> Page[CurrencyScale]:
    """Every currency the ledger's accounts use, with its one scale: the
    ISO 4217 minor unit, or for a code ISO gives none, the scale its first
    account named. An account's `scale` may be left out; another than its
    currency's is refused (422 `currency-scale-mismatch`)."""
    return await ledger.accounts.currencies()


def router(settings: Settings) -> Router:
    """The currencies' route."""
    return Router(path="/", route_handlers=[list_currencies])
