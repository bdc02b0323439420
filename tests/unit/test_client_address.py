"""Whose address a request is counted under, behind trusted proxies."""

from __future__ import annotations

import pytest

from ledger.api.client_address import client_address, parse_proxies

PROXIES = parse_proxies("10.0.0.0/8, 192.0.2.1, fd00::/8")


@pytest.mark.parametrize(
    ("peer", "xff", "forwarded", "client"),
    [
        # Not from a proxy: the peer, whatever it claims.
        ("203.0.113.9", "1.1.1.1", None, "203.0.113.9"),
        # From a proxy: the right-most address that is not one of ours.
        ("10.1.2.3", "198.51.100.7", None, "198.51.100.7"),
        ("10.1.2.3", "6.6.6.6, 198.51.100.7, 10.4.4.4", None, "198.51.100.7"),
        ("192.0.2.1", "198.51.100.7:5555", None, "198.51.100.7"),
        ("fd00::1", "2001:db8::5", None, "2001:db8::5"),
        ("10.1.2.3", None, 'for=198.51.100.8;proto=https, for="[2001:db8::9]:80"', "2001:db8::9"),
        ("10.1.2.3", None, "for=198.51.100.8", "198.51.100.8"),
        # Nothing forwarded, or nothing readable: the proxy itself.
        ("10.1.2.3", None, None, "10.1.2.3"),
        ("10.1.2.3", "unknown", None, "10.1.2.3"),
        # Every hop ours: the left-most.
        ("10.1.2.3", "10.7.7.7, 10.8.8.8", None, "10.7.7.7"),
    ],
)
def test_the_client_is_the_first_untrusted_hop_from_the_right(peer, xff, forwarded, client):
    assert client_address(peer, PROXIES, xff, forwarded) == client


def test_without_trusted_proxies_headers_are_ignored():
    assert client_address("10.1.2.3", (), "198.51.100.7", None) == "10.1.2.3"


def test_a_proxy_list_that_is_not_addresses_is_refused_by_name():
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33'"):
        parse_proxies("10.0.0.0/8, 10.0.0.0/33")
