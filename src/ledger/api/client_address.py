"""Whose request it is: the client's address, as the failure limits and the
audit row's `source` need it.

Behind a load balancer every request comes from the balancer's address.
`LEDGER_TRUSTED_PROXIES` names the proxies (CIDRs) whose forwarding headers
are believed: for a request from one of them, the client is the right-most
address in `X-Forwarded-For` (or `Forwarded: for=`, RFC 7239) that is not
itself a trusted proxy. Addresses a client wrote further left are its own
claims and are ignored, so a client cannot pick the address it is limited
under. A request from anywhere else is its peer address, whatever headers
it sends.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# A forwarding header longer than this is not read (bounds the work per
# request a client can cause).
MAX_HOPS = 32


def parse_proxies(text: str) -> tuple[Network, ...]:
    """The networks of a comma-separated list of CIDRs or addresses.
    Raises ValueError naming the entry that is neither."""
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ValueError(f"LEDGER_TRUSTED_PROXIES: {item!r} is not an address or CIDR") from exc
    return tuple(networks)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip().strip('"')
    if text.startswith("["):  # [v6]:port
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(address, proxies: Sequence[Network]) -> bool:
    return any(address in network for network in proxies)


def _hops(forwarded_for: str | None, forwarded: str | None) -> list[str]:
    """The addresses the proxies appended, left (first) to right (last)."""
    if forwarded_for:
        return forwarded_for.split(",")[-MAX_HOPS:]
    if forwarded:
        hops = []
        for element in forwarded.split(",")[-MAX_HOPS:]:
            for pair in element.split(";"):
                name, _, value = pair.partition("=")
                if name.strip().lower() == "for":
                    hops.append(value)
        return hops
    return []


def client_address(
    peer: str | None,
    proxies: Sequence[Network],
    forwarded_for: str | None = None,
    forwarded: str | None = None,
) -> str | None:
    """The client's address: `peer`, or, when `peer` is a trusted proxy,
    the right-most forwarded address that is not one."""
    if peer is None or not proxies:
        return peer
    address = _address(peer)
    if address is None or not _trusted(address, proxies):
        return peer
    hops = _hops(forwarded_for, forwarded)
    for hop in reversed(hops):
        found = _address(hop)
        if found is None:
            return peer  # a hop we cannot read: trust nothing left of it
        if not _trusted(found, proxies):
            return str(found)
    # Every hop is a proxy of ours: the left-most is as far as we can see.
    first = _address(hops[0]) if hops else None
    return str(first) if first is not None else peer
