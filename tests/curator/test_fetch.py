"""URL fetching: address policy, redirects, size and time limits, against a real local server."""

from __future__ import annotations

import asyncio
import http.server
import ipaddress
import threading
import time
from collections.abc import Iterator
from typing import ClassVar

import pytest

from curator.contracts.errors import ImageError
from curator.core.fetch import AddressPolicy, ImageFetcher
from curator.core.settings import UrlFetchSettings


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.7", False),
        ("172.16.3.4", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fd00:ec2::254", False),
        ("fe80::1", False),
        ("::ffff:127.0.0.1", False),
    ],
    ids=lambda value: str(value),
)
def test_only_public_unicast_addresses_are_allowed(address: str, allowed: bool) -> None:
    assert AddressPolicy().address_allowed(ipaddress.ip_address(address)) is allowed


def test_allow_list_opens_named_networks_only() -> None:
    policy = AddressPolicy(["10.20.0.0/16", "images.internal"])
    assert policy.address_allowed(ipaddress.ip_address("10.20.1.2"))
    assert not policy.address_allowed(ipaddress.ip_address("10.21.1.2"))
    assert policy.host_allowed("IMAGES.internal")
    assert not policy.host_allowed("other.internal")


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, dict[str, str], bytes, float]]] = {}

    def do_GET(self) -> None:
        status, headers, body, delay = self.routes.get(self.path, (404, {}, b"", 0.0))
        time.sleep(delay)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    _Handler.routes = {
        "/ok.jpg": (200, {}, b"\xff\xd8image-bytes", 0.0),
        "/hop": (302, {"Location": "/ok.jpg"}, b"", 0.0),
        "/to-private": (302, {"Location": "http://10.9.9.9/x.jpg"}, b"", 0.0),
        "/loop": (302, {"Location": "/loop"}, b"", 0.0),
        "/big.jpg": (200, {}, b"x" * 5000, 0.0),
        "/slow.jpg": (200, {}, b"late", 2.0),
    }
    yield base
    httpd.shutdown()


def fetch(url: str, allow: tuple[str, ...] = ("127.0.0.1/32",), max_bytes: int = 4096) -> bytes:
    async def go() -> bytes:
        fetcher = ImageFetcher(
            UrlFetchSettings(allow_private=allow, timeout_s=0.5, max_redirects=3), max_bytes
        )
        try:
            return await fetcher.fetch(url)
        finally:
            await fetcher.close()

    return asyncio.run(go())


def error_code(url: str, **kwargs: object) -> str:
    with pytest.raises(ImageError) as caught:
        fetch(url, **kwargs)  # type: ignore[arg-type]
    return caught.value.code


def test_fetches_and_follows_redirects(server: str) -> None:
    assert fetch(f"{server}/ok.jpg") == b"\xff\xd8image-bytes"
    assert fetch(f"{server}/hop") == b"\xff\xd8image-bytes"


def test_loopback_refused_without_allow_list(server: str) -> None:
    assert error_code(f"{server}/ok.jpg", allow=()) == "url_refused"


def test_host_name_resolving_to_loopback_is_refused(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    assert error_code(f"http://localhost:{port}/ok.jpg", allow=()) == "url_refused"


def test_redirect_to_private_address_is_refused(server: str) -> None:
    assert error_code(f"{server}/to-private") == "url_refused"


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/loop", "url_fetch_failed"),
        ("/missing.jpg", "url_fetch_failed"),
        ("/big.jpg", "image_too_large"),
        ("/slow.jpg", "url_fetch_failed"),
    ],
    ids=["redirect-loop", "404", "too-large", "timeout"],
)
def test_failures_have_codes(server: str, path: str, code: str) -> None:
    assert error_code(f"{server}{path}") == code
