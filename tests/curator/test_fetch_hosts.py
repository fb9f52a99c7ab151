"""The URL checker against every way of writing a host: the forms the HTTP client normalises
(NFKC and IDNA: full-width and circled digits, ideographic full stops), the numeric IPv4 forms
(decimal, hex, octal, short), and the IPv6 forms that carry an IPv4 address. Property-based
(hypothesis), with every input that once got through kept as an explicit example."""

from __future__ import annotations

import asyncio
import http.server
import ipaddress
import socket
import threading
import urllib.parse
from collections.abc import Iterator

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from curator.contracts.errors import ImageError
from curator.core.fetch import (
    AddressPolicy,
    ImageFetcher,
    UrlInvalid,
    UrlRefused,
    _CheckingResolver,
    embedded_ipv4,
)
from curator.core.settings import UrlFetchSettings

FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])

# Ranges an attacker aims at, and public ones the parser must still read right.
_SPECIAL_V4 = [
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "224.0.0.0/4", "240.0.0.0/4", "8.8.8.0/24", "93.184.216.0/24", "1.0.0.0/8",
]
_SPECIAL_V6 = [
    "::/127", "fe80::/10", "fc00::/7", "fec0::/10", "ff00::/8", "100::/64", "2001::/32",
    "2001:db8::/32", "64:ff9b:1::/48", "2606:4700::/32", "2a00:1450::/32",
]


def fetcher(allow: tuple[str, ...] = ()) -> ImageFetcher:
    return ImageFetcher(UrlFetchSettings(allow_private=allow), max_bytes=4096)


Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def in_network(draw: st.DrawFn, networks: list[str]) -> Address:
    network = ipaddress.ip_network(draw(st.sampled_from(networks)))
    offset = draw(st.integers(0, network.num_addresses - 1))
    return network[offset]


@st.composite
def ipv4_addresses(draw: st.DrawFn) -> ipaddress.IPv4Address:
    if draw(st.booleans()):
        return ipaddress.IPv4Address(draw(st.integers(0, 2**32 - 1)))
    address = in_network(draw, _SPECIAL_V4)
    assert isinstance(address, ipaddress.IPv4Address)
    return address


# What NFKC turns into an ASCII digit: full-width, circled (0 and 1-9), mathematical bold.
_DIGITS = {
    "ascii": "0123456789",
    "fullwidth": "".join(chr(0xFF10 + d) for d in range(10)),
    "circled": "\u24ea" + "".join(chr(0x2460 + d) for d in range(9)),
    "bold": "".join(chr(0x1D7CE + d) for d in range(10)),
}
_DOTS = [".", "\u3002", "\uff0e", "\uff61"]  # full stop, ideographic, full-width, half-width


@st.composite
def ipv4_hosts(draw: st.DrawFn, address: ipaddress.IPv4Address) -> str:
    """`address` written in one of the forms inet_aton and URL parsers accept, in characters
    that NFKC turns into those forms."""
    parts = draw(st.integers(1, 4))
    packed = address.packed
    numbers = [*packed[: parts - 1], int.from_bytes(packed[parts - 1:], "big")]
    labels = []
    for number in numbers:
        radix = draw(st.sampled_from(["dec", "hex", "HEX", "oct"]))
        if radix == "dec":
            text = str(number)
        elif radix in ("hex", "HEX"):
            text = "0x" + "0" * draw(st.integers(0, 2)) + format(number, "x")
            text = text.upper() if radix == "HEX" else text
        else:
            text = "0" + "0" * draw(st.integers(0, 2)) + format(number, "o")
        digits = _DIGITS[draw(st.sampled_from(sorted(_DIGITS)))]
        labels.append("".join(digits[int(c)] if c.isdigit() else c for c in text))
    dot = draw(st.sampled_from(_DOTS))
    return dot.join(labels) + draw(st.sampled_from(["", "."]))


@st.composite
def ipv6_literals(draw: st.DrawFn) -> tuple[str, ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """An IPv6 literal and the address it delivers to (the embedded IPv4 one, if any)."""
    v4 = draw(ipv4_addresses())
    dotted = str(v4)
    hi, lo = divmod(int(v4), 2**16)
    form = draw(st.sampled_from(["mapped", "mapped-hex", "mapped-long", "compatible", "nat64",
                                 "6to4", "plain"]))
    if form == "mapped":
        return f"::ffff:{dotted}", v4
    if form == "mapped-hex":
        return f"::FFFF:{hi:x}:{lo:x}", v4
    if form == "mapped-long":
        return f"0:0:0:0:0:ffff:{dotted}", v4
    if form == "compatible":
        # Deprecated (RFC 4291): refused whatever it embeds, so its oracle is itself.
        return f"::{dotted}", ipaddress.IPv6Address(f"::{dotted}")
    if form == "nat64":
        return f"64:ff9b::{dotted}", v4
    if form == "6to4":
        return f"2002:{hi:x}:{lo:x}::{draw(st.integers(0, 0xFFFF)):x}", v4
    address = in_network(draw, _SPECIAL_V6)
    return str(address), address


def reachable(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """The oracle: Python's own idea of a globally reachable unicast address."""
    return address.is_global and not address.is_multicast


def outcome(url: str, allow: tuple[str, ...] = ()) -> str:
    try:
        return str(fetcher(allow).check_url(url))
    except (UrlRefused, UrlInvalid) as error:
        return error.code


@FUZZ
@given(address=ipv4_addresses(), data=st.data())
def test_every_written_form_of_an_ipv4_address_is_read_as_that_address(
    address: ipaddress.IPv4Address, data: st.DataObject
) -> None:
    host = data.draw(ipv4_hosts(address), label="host")
    got = outcome(f"http://{host}:8080/a.jpg")
    if not reachable(address):
        assert got in ("url_refused", "invalid_url"), (host, got)
    if AddressPolicy().address_allowed(address):
        assert got == f"http://{address}:8080/a.jpg", (host, got)
    else:
        assert got == "url_refused", (host, got)


@FUZZ
@given(literal=ipv6_literals())
def test_ipv6_literals_are_judged_by_the_address_they_deliver_to(
    literal: tuple[str, ipaddress.IPv4Address | ipaddress.IPv6Address]
) -> None:
    text, delivered = literal
    got = outcome(f"http://[{text}]/a.jpg")
    if not reachable(delivered):
        assert got == "url_refused", (text, got)
    if got != "url_refused":
        assert got == f"http://[{ipaddress.IPv6Address(text)}]/a.jpg"


@FUZZ
@given(st.text(max_size=60))
@example("http://[::1/x")
@example("http://host\uff1a80/a.jpg")
@example("http://\ud800.com/")
@example("http://[::1]:x/")
@example("http://a:99999/")
def test_any_text_as_a_url_is_refused_or_checked_never_raises_otherwise(tail: str) -> None:
    for url in (tail, f"http://{tail}", f"https://{tail}/a.jpg"):
        try:
            checked = fetcher().check_url(url)
        except (UrlRefused, UrlInvalid):
            continue
        # What passes is http(s) to a name (checked by the resolver) or a public address.
        assert checked.scheme in ("http", "https") and checked.raw_host
        try:
            address = ipaddress.ip_address(checked.raw_host)
        except ValueError:
            continue
        assert AddressPolicy().address_allowed(address)


class _FixedResolver(AbstractResolver):
    """Answers every name with the given addresses, as a hostile DNS server would."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.asked.append(host)
        return [{"hostname": host, "host": a, "port": port, "family": family, "proto": 0,
                 "flags": 0} for a in self.addresses]

    async def close(self) -> None:
        pass


@FUZZ
@given(st.lists(st.one_of(ipv4_addresses(), ipv6_literals().map(lambda pair: pair[0])),
                min_size=1, max_size=5))
def test_resolver_returns_only_reachable_addresses(
    answers: list[ipaddress.IPv4Address | str]
) -> None:
    addresses = [str(a) for a in answers]
    resolver = _CheckingResolver(AddressPolicy(), _FixedResolver(addresses))
    try:
        results = asyncio.run(resolver.resolve("images.example.com", 443))
    except UrlRefused:
        assert not any(AddressPolicy().address_allowed(ipaddress.ip_address(a))
                       for a in addresses)
        return
    assert results
    for result in results:
        address = ipaddress.ip_address(result["host"])
        assert AddressPolicy().address_allowed(address)
        assert reachable(embedded_ipv4(address) or address)


def test_resolver_reads_numeric_hosts_itself() -> None:
    inner = _FixedResolver(["8.8.8.8"])
    resolver = _CheckingResolver(AddressPolicy(), inner)
    with pytest.raises(UrlRefused):
        asyncio.run(resolver.resolve("0x7f.1", 80))
    (result,) = asyncio.run(resolver.resolve("134744072", 80))
    assert result["host"] == "8.8.8.8" and inner.asked == []


# The regression corpus: each form got past the checker before it read hosts as the client does.
@pytest.mark.parametrize(
    "url",
    [
        "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/a.jpg",  # full-width digits
        "http://\u2460\u2461\u2466.0.0.1/a.jpg",  # circled digits
        "http://127\u30020\u30020\u30021/a.jpg",  # ideographic full stops
        "http://2130706433/a.jpg",
        "http://0x7f.1/a.jpg",
        "http://127.1/a.jpg",
        "http://0177.0.0.1/a.jpg",
        "http://127.0.0.1./a.jpg",
        "http://[::ffff:127.0.0.1]/a.jpg",
        "http://[::7f00:1]/a.jpg",  # IPv4-compatible
        "http://[64:ff9b::7f00:1]/a.jpg",  # NAT64 to loopback
        "http://[64:ff9b::a9fe:a9fe]/a.jpg",  # NAT64 to the metadata address
        "http://[2002:a9fe:a9fe::1]/a.jpg",  # 6to4 around the metadata address
        "http://[64:ff9b:1::1]/a.jpg",  # local-use NAT64
        "http://[fec0::1]/a.jpg",  # deprecated site-local
        "http://[fe80::1%25eth0]/a.jpg",
    ],
)
def test_hosts_that_normalise_to_private_addresses_are_refused(url: str) -> None:
    assert outcome(url) == "url_refused"


@pytest.mark.parametrize(
    "url",
    ["http://[::1/x", "http://host\uff1a80/a.jpg", "http://\ud800.com/", "http://a b/",
     "http://1.2.3.4.5/", "http://256.0.0.1/", "http://08.0.0.1/", "http://%31%32%37.0.0.1/",
     "http://foo.123/", "http://a:99999/"],
)
def test_malformed_urls_are_an_image_error(url: str) -> None:
    assert outcome(url) == "invalid_url"


def test_public_numeric_forms_are_rewritten_to_the_address_checked() -> None:
    assert outcome("http://134744072/a.jpg") == "http://8.8.8.8/a.jpg"
    assert outcome("http://8.8.8.8./a.jpg") == "http://8.8.8.8/a.jpg"
    assert outcome("http://[64:ff9b::8.8.8.8]/a.jpg") == "http://[64:ff9b::808:808]/a.jpg"
    assert outcome("https://\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25.com/a") == (
        "https://example.com/a")


# Over a real connection: the client would have fetched these from loopback.
@pytest.fixture(scope="module")
def loopback() -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/redirect"):
                self.send_response(302)
                # Sent as UTF-8, the way a hostile server would; aiohttp reads it so.
                target = urllib.parse.unquote(self.path.split("?to=", 1)[1])
                self._headers_buffer.append(f"Location: {target}\r\n".encode())
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", "6")
            self.end_headers()
            self.wfile.write(b"secret")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def fetch(url: str, allow: tuple[str, ...] = ()) -> bytes:
    async def go() -> bytes:
        f = ImageFetcher(UrlFetchSettings(allow_private=allow, timeout_s=2), max_bytes=4096)
        try:
            return await f.fetch(url)
        finally:
            await f.close()

    return asyncio.run(go())


@pytest.mark.parametrize(
    "host", ["\uff11\uff12\uff17.\uff10.\uff10.\uff11", "\u2460\u2461\u2466.0.0.1",
             "127\u30020\u30020\u30021", "0x7f.1", "2130706433"],
)
def test_loopback_in_any_form_is_never_fetched(loopback: int, host: str) -> None:
    with pytest.raises(ImageError) as caught:
        fetch(f"http://{host}:{loopback}/x.jpg")
    assert caught.value.code == "url_refused"
    # Allowed explicitly, the same form is fetched from the address that was checked.
    assert fetch(f"http://{host}:{loopback}/x.jpg", allow=("127.0.0.1/32",)) == b"secret"


def test_a_redirect_to_a_normalised_loopback_form_is_refused(loopback: int) -> None:
    target = f"http://\u2460\u2461\u2466.0.0.1:{loopback}/x.jpg"
    with pytest.raises(ImageError) as caught:
        fetch(f"http://localhost:{loopback}/redirect?to={target}", allow=("localhost",))
    assert caught.value.code == "url_refused"


def test_a_redirect_to_a_malformed_url_fails_the_image(loopback: int) -> None:
    with pytest.raises(ImageError) as caught:
        fetch(f"http://localhost:{loopback}/redirect?to=http://[::1/x", allow=("localhost",))
    assert caught.value.code == "invalid_url"
