"""Request bodies are decoded strictly, and each mistake gets its own error."""

import pytest

from ledger.api import errors as wire
from ledger.api.decoding import decode_body
from ledger.api.problems import status_of
from ledger.engine import errors
from ledger.engine.model import NewTransaction


def decode(body: bytes, max_bytes: int = 10_000):
    return decode_body(body, NewTransaction, max_bytes)


def leg(amount="1", extra=""):
    return b'{"entries":[{"account_id":"a","direction":"debit","amount":%s%s}]}' % (
        amount.encode(),
        extra.encode(),
    )


@pytest.mark.parametrize(
    ("body", "error", "pointer"),
    [
        (b"{bad", wire.MalformedJson, None),
        (b"", wire.MalformedJson, None),
        (b'{"entries":[]} trailing', wire.MalformedJson, None),
        (leg(extra=', "memo": 1'), wire.UnknownField, "/entries/0/memo"),
        (
            b'{"entries":[{"direction":"debit","amount":1}]}',
            wire.MissingField,
            "/entries/0/account_id",
        ),
        (leg("1.5"), wire.FloatAmount, "/entries/0/amount"),
        (leg("1.0"), wire.FloatAmount, "/entries/0/amount"),
        (leg('"1"'), wire.WrongType, "/entries/0/amount"),
        (leg("true"), wire.WrongType, "/entries/0/amount"),
        (b"[]", wire.WrongType, "/"),
        (
            b'{"entries":[{"account_id":"a","direction":"up","amount":1}]}',
            errors.InvalidValue,
            "/entries/0/direction",
        ),
    ],
)
def test_each_mistake_is_named(body, error, pointer):
    with pytest.raises(error) as caught:
        decode(body)
    if pointer is not None:
        assert caught.value.details["pointer"] == pointer
    assert 400 <= status_of(caught.value) < 500


def test_a_body_over_the_limit_is_refused_before_decoding():
    with pytest.raises(wire.BodyTooLarge):
        decode(b" " * 101, max_bytes=100)


def test_a_valid_body_decodes():
    cmd = decode(leg("7"))
    assert cmd.entries[0].amount == 7


def test_an_invalid_enum_value_lists_the_allowed_ones():
    with pytest.raises(errors.InvalidValue) as caught:
        decode(b'{"entries":[{"account_id":"a","direction":"DEBIT","amount":1}]}')
    assert "'credit', 'debit'" in caught.value.detail
    assert caught.value.details["allowed"] == ["credit", "debit"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"entries":[{"account_id":"a","direction":"debit","amount":1,"amount":900}]}',
        b'{"entries":[],"entries":[]}',
        b'{"entries":[],"metadata":{"k":1,"k":2}}',
    ],
)
def test_a_key_given_twice_is_refused_naming_it(body):
    with pytest.raises(wire.DuplicateKey) as caught:
        decode(body)
    assert caught.value.details["key"] in caught.value.detail
    assert status_of(caught.value) == 400
