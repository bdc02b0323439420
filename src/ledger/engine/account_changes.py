"""What may change about an account after it is made, and when: its
hotness, status, metadata and limit flags. Pure functions, like
`ledger.engine.rules`: `plan` judges a patch against the account as it is
now (read under a lock) and lists the fields that change; storage writes
them and records each one."""

from __future__ import annotations

from typing import Any

from ledger.engine import errors
from ledger.engine.account_rules import check_flags, check_hot
from ledger.engine.free_text import check_metadata
from ledger.engine.legs import LIMIT_FLAGS, limit_excess
from ledger.engine.limits import Limits
from ledger.engine.model import (
    AccountFlags,
    AccountPatch,
    AccountState,
    FieldChange,
    PendingTotals,
)

PATCH_FIELDS = "hot, status, metadata, flags"


def check_patch(patch: AccountPatch, limits: Limits) -> None:
    """What can be judged without the account. Raises NothingToChange,
    InvalidValue."""
    if (patch.hot, patch.status, patch.metadata, patch.flags) == (None,) * 4:
        raise errors.NothingToChange(f"give at least one of {PATCH_FIELDS}")
    if patch.metadata is not None:
        check_metadata(patch.metadata, None, limits)


def plan(state: AccountState, patch: AccountPatch, limits: Limits) -> list[FieldChange]:
    """The fields `patch` changes on the account, in a fixed order (hot,
    status, metadata, flags); empty when it asks for what already is.

    Raises AccountClosed (a closed account never changes), AccountNotEmpty
    (closing one that holds anything), InvalidAccount (both limit flags),
    HotAccountLimited, LimitExceeded (a new limit the balance already
    breaks), InvalidValue (merged metadata too large).
    """
    account = state.account
    if account.status == "closed":
        raise errors.AccountClosed(
            f"account {account.id!r} is closed; a closed account never changes",
            account_id=account.id,
            account_status=account.status,
        )
    hot = account.hot if patch.hot is None else patch.hot
    flags = _flags(account.flags, patch)
    check_flags(flags)
    check_hot(account.id, flags, hot)
    changes: list[FieldChange] = []
    if hot != account.hot:
        changes.append(FieldChange("hot", account.hot, hot))
    if patch.status is not None and patch.status != account.status:
        if patch.status == "closed":
            _check_empty(state)
        changes.append(FieldChange("status", account.status, patch.status))
    if patch.metadata is not None:
        merged = merge_metadata(account.metadata, patch.metadata)
        check_metadata(merged, None, limits)
        if merged != account.metadata:
            changes.append(FieldChange("metadata", account.metadata, merged))
    for name in LIMIT_FLAGS:
        was, now = getattr(account.flags, name), getattr(flags, name)
        if was != now:
            if now:
                _check_limit_holds(state, name)
            changes.append(FieldChange(name, was, now))
    return changes


def merge_metadata(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7396 merge patch: a key with null is removed, an object merges
    into an object, anything else replaces."""
    merged = dict(current)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_metadata(merged[key], value)
        else:
            merged[key] = value
    return merged


def _flags(flags: AccountFlags, patch: AccountPatch) -> AccountFlags:
    if patch.flags is None:
        return flags
    return AccountFlags(
        **{
            name: getattr(flags, name)
            if getattr(patch.flags, name) is None
            else getattr(patch.flags, name)
            for name in LIMIT_FLAGS
        }
    )


def _check_empty(state: AccountState) -> None:
    posted = state.posted_debits - state.posted_credits
    held = PendingTotals(state.pending_debits, state.pending_credits)
    if posted or held.debits or held.credits:
        raise errors.AccountNotEmpty(
            f"account {state.account.id!r} cannot close: its posted debits are "
            f"{state.posted_debits} against credits of {state.posted_credits}, and "
            f"{held.debits} debits and {held.credits} credits are pending; move the balance "
            "out and resolve what is pending first",
            account_id=state.account.id,
            posted_debits=state.posted_debits,
            posted_credits=state.posted_credits,
            pending_debits=held.debits,
            pending_credits=held.credits,
        )


def _check_limit_holds(state: AccountState, name: str) -> None:
    """A limit may be added only where the balance already keeps it,
    counted as a posting would count it (pending amounts on the bounded
    side as if posted)."""
    bounded, bound = LIMIT_FLAGS[name]
    totals = {"debits": state.posted_debits, "credits": state.posted_credits}
    held = {"debits": state.pending_debits, "credits": state.pending_credits}
    excess = limit_excess(name, totals, held)
    if excess > 0:
        raise errors.LimitExceeded(
            f"account {state.account.id!r} cannot take {name}: its {bounded} are already "
            f"{totals[bounded]} posted and {held[bounded]} pending against {bound} of "
            f"{totals[bound]} (exceeding them by {excess})",
            account_id=state.account.id,
            limit=name,
            shortfall=excess,
        )
