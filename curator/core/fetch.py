"""Fetching `images[].url` without becoming an SSRF proxy.

A URL is parsed once, by yarl, the parser the HTTP client uses, so the host curator checks is the
host the client connects to: yarl has already applied NFKC and IDNA (full-width and circled digits,
ideographic full stops), and curator itself reads the numeric IPv4 forms (`2130706433`,
`0x7f.1`, `0177.0.0.1`, `127.1`) the way `inet_aton` and URL parsers do, then rewrites the URL to
the canonical address it checked. Host names are checked inside the resolver, so the addresses
that are checked are the addresses connected to (no DNS-rebinding window). Every redirect hop goes
through the same path again, since redirects are followed here rather than by aiohttp.

An address is fetched only when it is globally reachable: `ipaddress`'s `is_global`, a table of
special-purpose ranges (so the answer does not depend on the Python patch release), and for the
forms that embed an IPv4 address (IPv4-mapped, NAT64 64:ff9b::/96, 6to4) the embedded address too.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Iterable

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from curator.contracts.errors import ImageError
from curator.core.settings import UrlFetchSettings

logger = logging.getLogger("ray.serve")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class UrlRefused(ImageError):
    code = "url_refused"


class UrlInvalid(ImageError):
    """The URL cannot be parsed, or its host is neither a host name nor an address."""

    code = "invalid_url"


class UrlFetchFailed(ImageError):
    code = "url_fetch_failed"
    status = 422


# Special-purpose ranges that are never fetched, whatever this Python's `ipaddress` tables say
# (older patch releases call 64:ff9b:1::/48, fec0::/10 or ::/96 global). Stricter than the IANA
# registry where that costs nothing: all of 192.0.0.0/24 and ::/8.
_NEVER = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
        "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
        # ::/8 holds ::, ::1, IPv4-compatible ::/96 and IPv4-translated ::ffff:0:0:0/96;
        # IPv4-mapped ::ffff:0:0/96 is handled before this table, by its embedded address.
        "::/8", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32", "3fff::/20",
        "5f00::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address a translating IPv6 form delivers to: IPv4-mapped (::ffff:a.b.c.d),
    well-known NAT64 (64:ff9b::a.b.c.d) and 6to4 (2002:aabb:ccdd::). Teredo (2001::/32) and
    IPv4-compatible (::a.b.c.d) are refused whole."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


class AddressPolicy:
    """Which IP addresses may be fetched: globally reachable unicast only, plus an explicit
    allow-list."""

    def __init__(self, allow_private: Iterable[str] = ()) -> None:
        self._allowed_networks = []
        self._allowed_hosts = set()
        for entry in allow_private:
            try:
                self._allowed_networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self._allowed_hosts.add(entry.lower().rstrip("."))

    def host_allowed(self, host: str) -> bool:
        return host.lower().rstrip(".") in self._allowed_hosts

    def address_allowed(self, address: IPAddress) -> bool:
        if any(address in network for network in self._allowed_networks):
            return True
        embedded = embedded_ipv4(address)
        if embedded is not None:
            return self.address_allowed(embedded)
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
            return False  # a zone only means something on a local link
        if any(address in network for network in _NEVER):
            return False
        # is_global excludes private, loopback, link-local (incl. 169.254.169.254 metadata),
        # shared (100.64/10), reserved and unspecified ranges; multicast is refused explicitly.
        return address.is_global and not address.is_multicast


# A host name as DNS has it once IDNA has made it ASCII (underscores occur in real names).
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*\.?$")
_NUMBER = re.compile(r"^(?:0[x][0-9a-f]*|[0-9]+)$")


def _ipv4_number(label: str) -> int | None:
    """One part of a numeric IPv4 host: decimal, 0x hex or 0-led octal; None if it is none."""
    if label.startswith("0x"):
        return int(label[2:] or "0", 16)
    if len(label) > 1 and label.startswith("0"):
        return int(label, 8) if re.fullmatch(r"[0-7]+", label) else None
    return int(label) if label.isdigit() else None


def numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address of a host that ends in a number, read as `inet_aton` and URL parsers read it
    (1 to 4 parts, the last filling the remaining bytes). None for a host name.

    Raises UrlInvalid for a host that ends in a number yet is no IPv4 address (`1.2.3.4.5`,
    `256.1.1.1`, `08.1.1.1`): resolvers disagree on those, so none is fetched."""
    labels = host.lower().split(".")
    if len(labels) > 1 and labels[-1] == "":
        labels.pop()  # one trailing dot: the root
    if not _NUMBER.match(labels[-1]):
        return None
    numbers = [_ipv4_number(label) if _NUMBER.match(label) else None for label in labels]
    if len(labels) > 4 or any(n is None for n in numbers):
        raise UrlInvalid(f"host {host!r} is not a valid IPv4 address")
    *head, last = [n for n in numbers if n is not None]
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        raise UrlInvalid(f"host {host!r} is not a valid IPv4 address")
    value = last
    for index, number in enumerate(head):
        value |= number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def host_address(host: str) -> IPAddress | None:
    """The address a URL's host (yarl's `raw_host`: IDNA-encoded, brackets removed) names, or
    None when it is a host name. Raises UrlInvalid when it is neither."""
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise UrlInvalid(f"host {host!r} is not a valid IPv6 address") from None
    address = numeric_ipv4(host)
    if address is None and not _HOST_NAME.match(host.lower()):
        raise UrlInvalid(f"host {host!r} is not a valid host name")
    return address


def parse_url(url: str | URL) -> URL:
    """A URL as the HTTP client will see it; UrlInvalid instead of yarl's ValueError."""
    try:
        parsed = url if isinstance(url, URL) else URL(url)
        parsed.port  # noqa: B018 - yarl checks the port lazily
        parsed.raw_host  # noqa: B018
    except (ValueError, TypeError) as error:  # UnicodeError (IDNA) is a ValueError too
        raise UrlInvalid(f"the URL cannot be parsed: {error}") from None
    return parsed


class _CheckingResolver(AbstractResolver):
    """Resolves with the system resolver, then drops every address the policy refuses. What it
    returns is the canonical form of the addresses it checked: the connection is pinned to
    them."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or ThreadedResolver()
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        literal = host_address(host)  # check_url rewrote these; never handed to getaddrinfo
        if literal is not None:
            if not self._policy.address_allowed(literal):
                raise UrlRefused(f"address {literal} is private, loopback or reserved")
            return [{"hostname": host, "host": str(literal), "port": port,
                     "family": socket.AF_INET6 if literal.version == 6 else socket.AF_INET,
                     "proto": 0, "flags": socket.AI_NUMERICHOST}]
        results = await self._inner.resolve(host, port, family)
        if self._policy.host_allowed(host):
            return results
        allowed = []
        for result in results:
            try:
                address = ipaddress.ip_address(result["host"])
            except ValueError:
                continue
            if self._policy.address_allowed(address):
                checked = result.copy()
                checked["host"] = str(address)
                allowed.append(checked)
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

    def check_url(self, url: str | URL) -> URL:
        """The URL to request: parsed as the client parses it, its host checked, and a numeric
        host rewritten to the canonical address that was checked. Raises UrlInvalid or
        UrlRefused."""
        parsed = parse_url(url)
        if parsed.scheme not in ("http", "https"):
            scheme = parsed.scheme or "none"
            raise UrlRefused(f"only http and https URLs are fetched, not {scheme!r}")
        host = parsed.raw_host
        if not host:
            raise UrlRefused("URL has no host")
        if parsed.raw_user or parsed.raw_password:
            raise UrlRefused("URLs with credentials are refused")
        literal = host_address(host)
        if literal is None:
            return parsed  # a name: checked by the resolver at connect time
        if not self._policy.address_allowed(literal):
            raise UrlRefused(f"address {literal} is private, loopback or reserved")
        canonical = str(literal)
        return parsed if host == canonical else parsed.with_host(canonical)

    async def fetch(self, url: str) -> bytes:
        target: str | URL = url
        for _hop in range(self._settings.max_redirects + 1):
            checked = self.check_url(target)
            try:
                async with self._client().get(checked, allow_redirects=False) as response:
                    location = response.headers.get("Location")
                    if response.status in _REDIRECT_STATUSES and location is not None:
                        target = checked.join(parse_url(location))
                        continue
                    if response.status != 200:
                        raise UrlFetchFailed(f"GET {checked} answered HTTP {response.status}")
                    return await self._read_capped(response)
            except ImageError:
                raise
            except TimeoutError:
                raise UrlFetchFailed(
                    f"GET {checked} took longer than {self._settings.timeout_s:g} s"
                ) from None
            except aiohttp.ClientError as exc:
                # The resolver's refusal surfaces wrapped in a connection error.
                cause = exc.__cause__ or exc.__context__
                if isinstance(cause, UrlRefused | UrlInvalid):
                    raise type(cause)(cause.message) from None
                raise UrlFetchFailed(f"GET {checked} failed: {exc}") from None
            except (ValueError, OSError) as exc:
                # Anything else the client raises on a hostile URL or answer fails this image.
                logger.warning("GET %s failed unexpectedly: %r", checked, exc)
                raise UrlFetchFailed(f"GET {checked} failed: {exc}") from None
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
