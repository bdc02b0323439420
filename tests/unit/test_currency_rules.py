"""The scale a new account gets: its currency's, one per ledger."""

import pytest

from ledger.engine import errors
from ledger.engine.currencies import account_scale, iso_scale


def test_iso_4217_gives_the_default_scale():
    assert (iso_scale("USD"), iso_scale("JPY"), iso_scale("BHD")) == (2, 0, 3)
    assert iso_scale("XAU") is None  # gold: ISO gives no minor unit
    assert iso_scale("POINTS") is None


def test_a_scale_left_out_is_the_currencys():
    assert account_scale("JPY", None, None) == 0
    assert account_scale("POINTS", None, 4) == 4


def test_a_scale_other_than_the_currencys_is_refused_naming_both():
    with pytest.raises(errors.CurrencyScaleMismatch) as iso:
        account_scale("USD", 5, None)
    assert iso.value.details == {"currency": "USD", "scale": 2, "asked": 5}
    assert "USD has scale 2 by ISO 4217" in iso.value.detail
    with pytest.raises(errors.CurrencyScaleMismatch) as ledger:
        account_scale("POINTS", 2, 4)
    assert "POINTS has scale 4 in this ledger" in ledger.value.detail


def test_a_code_without_a_scale_anywhere_must_name_one():
    with pytest.raises(errors.InvalidAccount) as caught:
        account_scale("POINTS", None, None)
    assert caught.value.details["field"] == "scale"
    assert account_scale("POINTS", 3, None) == 3
