"""What a PATCH of an account may change, judged without a database."""

from datetime import UTC, datetime

import pytest

from ledger.engine import account_changes, errors
from ledger.engine.limits import Limits
from ledger.engine.model import Account, AccountFlags, AccountPatch, AccountState, FlagsPatch

LIMITS = Limits(max_metadata_bytes=64)


def state(posted=(0, 0), pending=(0, 0), **fields) -> AccountState:
    account = Account(
        id="a",
        currency="USD",
        scale=2,
        normal_side="credit",
        flags=AccountFlags(),
        metadata={"k": 1},
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        **fields,
    )
    return AccountState(account, *posted, *pending)


def test_asking_for_what_is_changes_nothing():
    patch = AccountPatch(status="active", hot=False, metadata={"k": 1})
    assert account_changes.plan(state(), patch, LIMITS) == []


def test_each_changed_field_is_listed_once_in_a_fixed_order():
    patch = AccountPatch(
        metadata={"k": None, "n": 2},
        status="frozen",
        flags=FlagsPatch(debits_must_not_exceed_credits=True),
    )
    planned = account_changes.plan(state(posted=(0, 10)), patch, LIMITS)
    assert [(c.field, c.old_value, c.new_value) for c in planned] == [
        ("status", "active", "frozen"),
        ("metadata", {"k": 1}, {"n": 2}),
        ("debits_must_not_exceed_credits", False, True),
    ]


@pytest.mark.parametrize(
    ("current", "patch", "error"),
    [
        (state(status="closed"), AccountPatch(status="active"), errors.AccountClosed),
        (state(posted=(1, 0)), AccountPatch(status="closed"), errors.AccountNotEmpty),
        (state(pending=(0, 1)), AccountPatch(status="closed"), errors.AccountNotEmpty),
        (
            state(posted=(5, 4)),
            AccountPatch(flags=FlagsPatch(debits_must_not_exceed_credits=True)),
            errors.LimitExceeded,
        ),
        (
            state(posted=(4, 4), pending=(1, 0)),
            AccountPatch(flags=FlagsPatch(debits_must_not_exceed_credits=True)),
            errors.LimitExceeded,
        ),
        (
            state(hot=True),
            AccountPatch(flags=FlagsPatch(credits_must_not_exceed_debits=True)),
            errors.HotAccountLimited,
        ),
        (state(), AccountPatch(metadata={"big": "x" * 100}), errors.InvalidValue),
    ],
)
def test_refusals(current, patch, error):
    with pytest.raises(error):
        account_changes.plan(current, patch, LIMITS)


def test_an_empty_patch_is_refused_before_any_read():
    with pytest.raises(errors.NothingToChange):
        account_changes.check_patch(AccountPatch(), LIMITS)


def test_metadata_merges_as_rfc_7396_says():
    merge = account_changes.merge_metadata
    assert merge({"a": {"b": 1, "c": 2}}, {"a": {"b": None, "d": 3}}) == {"a": {"c": 2, "d": 3}}
    assert merge({"a": [1]}, {"a": [2]}) == {"a": [2]}
    assert merge({"a": 1}, {"a": {"b": 1}}) == {"a": {"b": 1}}
    assert merge({}, {"gone": None}) == {}
