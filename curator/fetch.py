"""Fetching `images[].url` without becoming an SSRF proxy.

Every address a URL leads to is checked: IP literals before connecting, host names inside the
resolver (so the address that is checked is the address that is connected to — no DNS-rebinding
window), and every redirect hop again, since redirects are followed here rather than by aiohttp.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from curator.errors import ImageError
from curator.settings import UrlFetchSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class UrlRefused(ImageError):
    code = "url_refused"


class UrlFetchFailed(ImageError):
    code = "url_fetch_failed"
    status = 422


class AddressPolicy:
    """Which IP addresses may be fetched: public unicast only, plus an explicit allow-list."""

    def __init__(self, allow_private: Iterable[str] = ()) -> None:
        self._allowed_networks = []
        self._allowed_hosts = set()
        for entry in allow_private:
            try:
                self._allowed_networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self._allowed_hosts.add(entry.lower())

    def host_allowed(self, host: str) -> bool:
        return host.lower() in self._allowed_hosts

    def address_allowed(self, address: IPAddress) -> bool:
        if any(address in network for network in self._allowed_networks):
            return True
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        # is_global excludes private, loopback, link-local (incl. 169.254.169.254 metadata),
        # shared (100.64/10), reserved and unspecified ranges; multicast is refused explicitly.
        return address.is_global and not address.is_multicast


class _CheckingResolver(AbstractResolver):
    """Resolves with the system resolver, then drops every address the policy refuses."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._inner = ThreadedResolver()
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if self._policy.host_allowed(host):
            return results
        allowed = [
            r for r in results if self._policy.address_allowed(ipaddress.ip_address(r["host"]))
        ]
        if not allowed:
            raise UrlRefused(f"host {host!r} resolves only to private or reserved addresses")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


class ImageFetcher:
    """One per ingress replica; reuses its connection pool across requests."""

    def __init__(self, settings: UrlFetchSettings, max_bytes: int) -> None:
        self._settings = settings
        self._max_bytes = max_bytes
        self._policy = AddressPolicy(settings.allow_private)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(resolver=_CheckingResolver(self._policy), limit=64)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self._settings.timeout_s),
                trust_env=False,  # never route through an environment proxy
                headers={"User-Agent": "curator-image-fetcher/1"},
            )
        return self._session

    def check_url(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            scheme = parts.scheme or "none"
            raise UrlRefused(f"only http and https URLs are fetched, not {scheme!r}")
        if not parts.hostname:
            raise UrlRefused("URL has no host")
        if parts.username or parts.password:
            raise UrlRefused("URLs with credentials are refused")
        try:
            literal = ipaddress.ip_address(parts.hostname)
        except ValueError:
            return  # a name: checked by the resolver at connect time
        if not self._policy.address_allowed(literal):
            raise UrlRefused(f"address {literal} is private, loopback or reserved")

    async def fetch(self, url: str) -> bytes:
        for _hop in range(self._settings.max_redirects + 1):
            self.check_url(url)
            try:
                async with self._client().get(url, allow_redirects=False) as response:
                    if response.status in _REDIRECT_STATUSES and "Location" in response.headers:
                        url = urljoin(url, response.headers["Location"])
                        continue
                    if response.status != 200:
                        raise UrlFetchFailed(f"GET {url} answered HTTP {response.status}")
                    return await self._read_capped(response)
            except ImageError:
                raise
            except TimeoutError:
                raise UrlFetchFailed(
                    f"GET {url} took longer than {self._settings.timeout_s:g} s"
                ) from None
            except aiohttp.ClientError as exc:
                # The resolver's refusal surfaces wrapped in a connection error.
                cause = exc.__cause__ or exc.__context__
                if isinstance(cause, UrlRefused):
                    raise UrlRefused(cause.message) from None
                raise UrlFetchFailed(f"GET {url} failed: {exc}") from None
        raise UrlFetchFailed(f"more than {self._settings.max_redirects} redirects")

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes:
        declared = response.content_length
        if declared is not None and declared > self._max_bytes:
            raise UrlFetchFailed(f"image is {declared} bytes; the limit is {self._max_bytes}",
                                 code="image_too_large")
        chunks: list[bytes] = []
        received = 0
        async for chunk in response.content.iter_chunked(1 << 16):
            received += len(chunk)
            if received > self._max_bytes:
                raise UrlFetchFailed(f"image exceeds the {self._max_bytes}-byte limit",
                                     code="image_too_large")
            chunks.append(chunk)
        return b"".join(chunks)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
