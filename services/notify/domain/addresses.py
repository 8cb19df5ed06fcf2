"""Which network addresses a webhook may be delivered to (the SSRF guard's rule; resolving names is an adapter's job).

Only globally routable unicast addresses: never loopback, private (RFC 1918, unique-local), link-local (which
includes cloud metadata endpoints such as 169.254.169.254), multicast, shared (CGNAT), documentation, benchmarking,
reserved or unspecified ones. An IPv6 address that embeds an IPv4 one (mapped, 6to4, Teredo, NAT64) is judged by
the embedded address too, so ``::ffff:127.0.0.1`` is loopback.
"""

from __future__ import annotations

import ipaddress

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: Address) -> str | None:
    """Why a delivery may not go to ``address`` (None: it may)."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # the IPv4 address itself, as a dual-stack socket would reach it
            return refusal(address.ipv4_mapped)
        embedded = _embedded_v4(address)
        if embedded is not None and (why := refusal(embedded)) is not None:
            return f"{address} embeds {why}"
    for test, kind in (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
    ):
        if test:
            return f"{address} is a {kind} address"
    if not address.is_global:
        return f"{address} is not a public address"
    return None


def literal_address(host: str) -> Address | None:
    """The address a URL's host spells out, if it is one (``[::1]`` included); None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
