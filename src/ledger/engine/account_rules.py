"""What an account may be: its id, currency, scale and flags. Pure
functions, like `ledger.engine.rules`; the scale's own rule (one per
currency) is in `ledger.engine.currencies`."""

from __future__ import annotations

import re

from ledger.engine import errors
from ledger.engine.free_text import check_metadata
from ledger.engine.limits import Limits
from ledger.engine.model import AccountFlags, NewAccount

ACCOUNT_ID = re.compile(r"^[A-Za-z0-9:_.-]{1,128}$")
CURRENCY = re.compile(r"^[A-Z][A-Z0-9]{2,11}$")
MAX_SCALE = 18


def known_account_id(account_id: str) -> bool:
    """Whether `account_id` could name an account (ids are checked at
    creation): one that cannot is simply not found, and never reaches SQL."""
    return ACCOUNT_ID.match(account_id) is not None


def check_new_account(cmd: NewAccount, limits: Limits) -> None:
    """Validate an account definition.

    Raises InvalidAccount for a bad id, currency, scale or contradictory
    flags, and InvalidValue for oversized metadata.
    """
    if cmd.id is not None and not ACCOUNT_ID.match(cmd.id):
        raise errors.InvalidAccount(
            "account id must match ^[A-Za-z0-9:_.-]{1,128}$", field="id", value=cmd.id
        )
    if not CURRENCY.match(cmd.currency):
        raise errors.InvalidAccount(
            "currency must be 3 to 12 upper-case letters or digits, starting with a letter "
            "(an ISO 4217 code such as USD)",
            field="currency",
            value=cmd.currency,
        )
    if cmd.scale is not None and not 0 <= cmd.scale <= MAX_SCALE:
        raise errors.InvalidAccount(
            f"scale must be between 0 and {MAX_SCALE}", field="scale", value=cmd.scale
        )
    check_flags(cmd.flags)
    check_hot(cmd.id, cmd.flags, cmd.hot)
    check_metadata(cmd.metadata, None, limits)


def check_flags(flags: AccountFlags) -> None:
    """Both limits together would pin the balance at zero forever: always a
    mistake. Raises InvalidAccount."""
    if flags.debits_must_not_exceed_credits and flags.credits_must_not_exceed_debits:
        raise errors.InvalidAccount(
            "debits_must_not_exceed_credits and credits_must_not_exceed_debits cannot both be set",
            field="flags",
        )


def check_hot(account_id: str | None, flags: AccountFlags, hot: bool) -> None:
    """A hot account may not carry a limit flag. Raises HotAccountLimited.

    A limit is only as good as the balance it is checked against, read under
    a lock every posting to the account takes: exactly the queue a hot
    account exists to avoid. A hot account's balance is a snapshot plus
    deltas that concurrent postings append without reading, so a limit on it
    could not be kept. Fee, clearing and settlement accounts, the accounts
    that are hot, carry no limit; an account that needs one stays ordinary.
    """
    if hot and (flags.debits_must_not_exceed_credits or flags.credits_must_not_exceed_debits):
        raise errors.HotAccountLimited(
            "a hot account cannot have debits_must_not_exceed_credits or "
            "credits_must_not_exceed_debits: its postings take no lock, so no limit could be "
            "checked against its balance; keep the account ordinary, or remove the limit "
            '(PATCH the account with {"flags": {"<flag>": false}})',
            account_id=account_id,
        )
