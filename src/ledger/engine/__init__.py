"""The engine: every rule of the ledger, no SQL and no HTTP.

Its public face, for the API, the command line, the workers and the
operator tools, is this module (the use cases and what their callers name)
and the record modules beside it: `model`, `*_model`, `access`, `audit`,
`errors`, `limits`, `currencies`, `events`, `reads`, `reconcile.model`.
The use cases' own modules, the rules and the ports are the engine's
business; an import contract (`pyproject.toml`) keeps everything outside
the engine but storage (which implements the ports) away from them.

    Ledger             the container: accounts, postings, batches, keys,
                       audit, journal, events, webhooks, reconciliation,
                       reports, and the ledger-wide checks
    Postings, Keys     use cases whose methods the API names directly
    Deliverer          the webhook deliverer a worker runs
"""

from ledger.engine.account_rules import ACCOUNT_ID, CURRENCY
from ledger.engine.delivery import Deliverer
from ledger.engine.journal_check import JournalReport
from ledger.engine.keys import Keys
from ledger.engine.ledger import Ledger
from ledger.engine.postings import Postings
from ledger.engine.reconciliation import STATEMENT_MEDIA

__all__ = [
    "ACCOUNT_ID",
    "CURRENCY",
    "STATEMENT_MEDIA",
    "Deliverer",
    "JournalReport",
    "Keys",
    "Ledger",
    "Postings",
]
