"""The SSRF guard's rule: only public unicast addresses, also when hidden inside IPv6."""

from __future__ import annotations

import ipaddress

import pytest

from services.notify.domain.addresses import literal_address, refusal


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # shared address space (CGNAT)
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "192.0.2.1",  # documentation
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
    ],
)
def test_non_public_addresses_are_refused(address):
    assert refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "203.0.114.1", "2001:4860:4860::8888", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address):
    assert refusal(ipaddress.ip_address(address)) is None


def test_a_refusal_says_what_kind_of_address_it_is():
    assert refusal(ipaddress.ip_address("127.0.0.1")) == "127.0.0.1 is a loopback address"
    assert "link-local" in refusal(ipaddress.ip_address("169.254.169.254"))


def test_literal_hosts_are_recognised_names_are_not():
    assert literal_address("[::1]") == ipaddress.ip_address("::1")
    assert literal_address("127.0.0.1") == ipaddress.ip_address("127.0.0.1")
    assert literal_address("hooks.example.com") is None
