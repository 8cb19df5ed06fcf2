"""The SSRF guard's adapter: resolve a receiver's name, check every address, and connect only to checked ones.

Each delivery resolves the URL's host and checks every address it resolves to (a literal address is checked as it
stands); the HTTP client's own resolver checks again when it opens a connection, so a DNS answer that changes
between the check and the connection (DNS rebinding) is refused too. A kept-alive connection is only ever reused to
the address that was checked when it was opened. Redirects are never followed (the sender does not ask for them).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver

from services.notify.domain.addresses import literal_address, refusal


class AddressRefused(OSError):
    """The receiver's address is not one LeadFlow delivers to."""


class AddressGuard:
    def __init__(self, allow_private_networks: bool) -> None:
        self.allow_private_networks = allow_private_networks

    def refuse(self, addresses: list[str], host: str) -> None:
        if self.allow_private_networks:
            return
        for address in addresses:
            why = refusal(ipaddress.ip_address(address.split("%")[0]))
            if why is not None:
                shown = f"{host} resolves to {why}" if host.strip("[]") != address else why
                raise AddressRefused(f"{shown} (set LEADFLOW_WEBHOOK_ALLOW_PRIVATE_NETWORKS=true to allow private networks)")

    async def check(self, url: str) -> None:
        """Raise :class:`AddressRefused` unless every address the URL's host stands for may be reached."""
        if self.allow_private_networks:
            return
        parts = urlsplit(url)
        host = parts.hostname or ""
        literal = literal_address(host)
        if literal is not None:
            self.refuse([str(literal)], host)
            return
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
        except socket.gaierror:
            return  # unresolvable: the connection attempt fails (and is retried) like any other
        self.refuse(sorted({info[4][0] for info in infos}), host)

    def resolver(self) -> GuardedResolver:
        return GuardedResolver(self)


class GuardedResolver(ThreadedResolver):
    """aiohttp's resolver, refusing the connection when the name resolves to an address the guard refuses."""

    def __init__(self, guard: AddressGuard) -> None:
        super().__init__()
        self.guard = guard

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await super().resolve(host, port, family)
        self.guard.refuse([result["host"] for result in results], host)
        return results
