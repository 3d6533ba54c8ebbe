"""The public-URL (SSRF) checks: every rule, after DNS through a fake resolver, and on every redirect.

Redirects are served by a real local HTTP server; the allow-list lets loopback count as public only
where a test says so, exactly as `MUSE_URL_ALLOWLIST` does for the local stack.
"""

from __future__ import annotations

import http.server
import re
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from shared.errors import InvalidRequest, UpstreamUnavailable
from shared.knowledge.models import TextResource
from shared.safety.urls import UrlPolicy
from shared.settings import Settings
from tests.integration.knowledge_world import BASE_ENV


class FakeDns:
    """A `socket.getaddrinfo`-shaped resolver over a fixed table; records every name it was asked."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    def __call__(self, host: str, port: Any, family: int = 0, type: int = 0, proto: int = 0,
                 flags: int = 0) -> list[tuple[Any, ...]]:
        self.asked.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port, 0, 0) if ":" in a else (a, port)) for a in self.table[host]]


DNS = FakeDns({
    "shop.example.com": ["93.184.216.34"],
    "dual.example.com": ["93.184.216.34", "2606:2800:220:1::248"],
    "split.example.com": ["93.184.216.34", "10.0.0.5"],
    "rebind.example.com": ["192.168.1.20"],
    "cgnat.example.com": ["100.64.3.4"],
    "meta.example.com": ["169.254.169.254"],
    "linklocal.example.com": ["169.254.10.1"],
    "v6loop.example.com": ["::1"],
    "mapped.example.com": ["::ffff:10.1.2.3"],
    "ula.example.com": ["fd12:3456::1"],
    "multicast.example.com": ["239.1.2.3"],
    "reserved.example.com": ["240.0.0.9"],
    "zero.example.com": ["0.0.0.0"],
})
POLICY = UrlPolicy(resolver=DNS)


@pytest.mark.parametrize(("url", "says"), [
    ("ftp://shop.example.com/file", "uses the scheme 'ftp', not http or https"),
    ("file:///etc/passwd", "uses the scheme 'file'"),
    ("gopher://shop.example.com:70/", "uses the scheme 'gopher'"),
    ("https://user:secret@shop.example.com/", "carries credentials"),
    ("https://shop.example.com@10.0.0.1/", "carries credentials"),
    ("http://127.0.0.1:8080/admin", "points at 127.0.0.1, a loopback address"),
    ("http://[::1]/", "points at ::1, a loopback address"),
    ("http://10.0.0.5/", "points at 10.0.0.5, a private address"),
    ("http://172.16.9.1/", "a private address"),
    ("http://192.168.0.1/", "a private address"),
    ("http://[fd00::1]/", "a private address"),
    ("http://169.254.169.254/latest/meta-data/", "points at 169.254.169.254, a cloud metadata address"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "a cloud metadata address"),
    ("http://100.100.100.200/latest/meta-data/", "a cloud metadata address"),
    ("http://169.254.1.1/", "a link-local address"),
    ("http://[fe80::1]/", "a link-local address"),
    ("http://100.64.0.1/", "a shared (CGNAT) address"),
    ("http://224.0.0.251/", "a multicast address"),
    ("http://[ff02::1]/", "a multicast address"),
    ("http://0.0.0.0/", "an unspecified address"),
    ("http://[::]/", "an unspecified address"),
    ("http://240.1.2.3/", "a reserved address"),
    ("http://192.0.2.10/", "a reserved address"),
    ("http://[::ffff:127.0.0.1]/", "a loopback address (it carries the IPv4 address 127.0.0.1)"),
    ("http://[::ffff:a9fe:a9fe]/", "a cloud metadata address (it carries the IPv4 address 169.254.169.254)"),
    ("http://[::10.0.0.1]/", "a private address (it carries the IPv4 address 10.0.0.1)"),
    ("http://[2002:a00:1::]/", "a private address (it carries the IPv4 address 10.0.0.1)"),
    ("http://[64:ff9b::7f00:1]/", "a loopback address (it carries the IPv4 address 127.0.0.1)"),
    ("http://2130706433/", "spells an IP address in a non-standard form ('2130706433')"),
    ("http://0177.0.0.1/", "non-standard form ('0177.0.0.1')"),
    ("http://0x7f000001/", "non-standard form ('0x7f000001')"),
    ("http://0x7f.0.0.1/", "non-standard form"),
    ("http://127.1/", "non-standard form ('127.1')"),
    ("http://10.0.0.010/", "non-standard form"),
    ("http://metadata.google.internal/computeMetadata/v1/", "names 'metadata.google.internal', a cloud metadata host"),
    ("http://metadata/computeMetadata/v1/", "a cloud metadata host"),
    ("http://instance-data.ec2.internal/", "a cloud metadata host"),
    ("http://localhost:5432/", "names 'localhost', a local-only host"),
    ("http://api.localhost/", "a local-only host"),
    ("http://db.internal/", "a local-only host"),
    ("http://printer/", "a local-only host"),
    ("http://[fe80::1%25eth0]/", "names an IPv6 zone"),
    ("http://shop.example.com/a b", "contains whitespace or control characters"),
    ("https://shop.example.com/" + "a" * 2100, "is longer than 2,048 characters"),
    ("https:///path-only", "has no host"),
    ("http://split.example.com/", "resolves to 10.0.0.5, a private address"),
    ("http://rebind.example.com/", "resolves to 192.168.1.20, a private address"),
    ("http://cgnat.example.com/", "resolves to 100.64.3.4, a shared (CGNAT) address"),
    ("http://meta.example.com/", "resolves to 169.254.169.254, a cloud metadata address"),
    ("http://linklocal.example.com/", "resolves to 169.254.10.1, a link-local address"),
    ("http://v6loop.example.com/", "resolves to ::1, a loopback address"),
    ("http://mapped.example.com/", "resolves to ::ffff:a01:203, a private address (it carries the IPv4 address "
                                   "10.1.2.3)"),
    ("http://ula.example.com/", "resolves to fd12:3456::1, a private address"),
    ("http://multicast.example.com/", "a multicast address"),
    ("http://reserved.example.com/", "a reserved address"),
    ("http://zero.example.com/", "an unspecified address"),
    ("http://nowhere.example.com/", "host 'nowhere.example.com' does not resolve"),
])
def test_non_public_urls_are_refused_naming_the_rule(url: str, says: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        POLICY.check(url)
    assert says in refused.value.message
    assert refused.value.message.startswith("`url` ")
    assert refused.value.message.endswith("only public http(s) URLs can be ingested.")
    assert refused.value.http_status == 400


@pytest.mark.parametrize("url", [
    "https://shop.example.com/products?id=7#top",
    "HTTP://SHOP.EXAMPLE.COM./",
    "http://dual.example.com:8443/",
    "http://93.184.216.34/",
    "http://[2606:2800:220:1::248]/",
])
def test_public_urls_pass_with_every_address_checked(url: str) -> None:
    checked = POLICY.check(url)
    assert checked.addresses and all(a.is_global for a in checked.addresses)


def test_every_resolved_address_must_be_public() -> None:
    assert [str(a) for a in POLICY.check("http://dual.example.com/").addresses] == [
        "93.184.216.34", "2606:2800:220:1::248"]
    with pytest.raises(InvalidRequest, match="10.0.0.5"):
        POLICY.check("http://split.example.com/")


def test_the_allow_list_is_configuration_for_networks_hosts_and_domains() -> None:
    dns = FakeDns({"emulator.test": ["127.0.0.1"]})
    policy = UrlPolicy.from_entries(["127.0.0.0/8", " ", "localhost", ".example.in"], resolver=dns)
    assert policy.check("http://127.0.0.1:9000/page").addresses
    assert policy.check("http://emulator.test/page").addresses
    assert policy.check("http://localhost:8080/").addresses == ()
    assert policy.check("https://adpulse.example.in/story").addresses == ()
    assert policy.check("https://example.in/").addresses == ()
    assert "adpulse.example.in" not in dns.asked, "a host trusted by name is not resolved"
    with pytest.raises(InvalidRequest, match="private"):
        policy.check("http://10.0.0.1/")
    with pytest.raises(InvalidRequest, match="loopback"):
        policy.check("http://[::1]/")
    with pytest.raises(InvalidRequest, match="scheme"):
        policy.check("ftp://localhost/")
    with pytest.raises(InvalidRequest, match="local-only"):
        UrlPolicy.from_entries(["example.in"], resolver=dns).check("http://localhost/")


def test_the_api_body_refuses_malformed_urls_before_any_lookup() -> None:
    for url, says in (("ftp://x.example.com/", "not http or https"), ("https://a:b@x.example.com/", "credentials")):
        with pytest.raises(ValueError, match=says):
            TextResource(kind="url", url=url)
    assert TextResource(kind="url", url="  https://shop.example.com/  ").url == "https://shop.example.com/"


# ----------------------------------------------------------------------------------------------- redirects


class _Redirects(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, str | None]] = {}
    hits: list[str] = []
    hosts: list[str] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.hosts.append(self.headers["Host"])
        status, location = self.routes.get(self.path, (404, None))
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    """A local server answering redirects from `_Redirects.routes`; its base URL."""
    _Redirects.routes, _Redirects.hits, _Redirects.hosts = {}, [], []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirects)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _local_policy(**names: str) -> UrlPolicy:
    """Loopback counts as public (as the local stack configures it); `names` resolve through the fake DNS."""
    dns = FakeDns({name.replace("_", "."): [address] for name, address in names.items()})
    return UrlPolicy.from_entries(["127.0.0.0/8"], resolver=dns, timeout_seconds=5)


def test_redirects_are_followed_hop_by_hop_to_the_final_url(site: str) -> None:
    port = int(site.rsplit(":", 1)[1])
    _Redirects.routes = {"/a": (301, "/b"), "/b": (302, f"http://shop.test:{port}/c?x=1"), "/c?x=1": (200, None)}
    policy = _local_policy(shop_test="127.0.0.1")
    assert policy.resolve_redirects(f"{site}/a") == f"http://shop.test:{port}/c?x=1"
    assert _Redirects.hits == ["/a", "/b", "/c?x=1"]


@pytest.mark.parametrize(("location", "says"), [
    ("http://169.254.169.254/latest/meta-data/", "redirects to 'http://169.254.169.254/latest/meta-data/', which "
                                                 "points at 169.254.169.254, a cloud metadata address"),
    ("http://10.0.0.7/admin", "which points at 10.0.0.7, a private address"),
    ("http://internal.test/", "which resolves to 192.168.5.5, a private address"),
    ("gopher://shop.test/", "which uses the scheme 'gopher'"),
    ("http://metadata.google.internal/", "a cloud metadata host"),
])
def test_a_redirect_to_a_forbidden_place_is_refused_before_it_is_requested(site: str, location: str,
                                                                            says: str) -> None:
    _Redirects.routes = {"/start": (302, "/next"), "/next": (307, location)}
    policy = _local_policy(internal_test="192.168.5.5")
    with pytest.raises(InvalidRequest) as refused:
        policy.resolve_redirects(f"{site}/start")
    assert refused.value.message.startswith("`url` redirects to ")
    assert says in refused.value.message
    assert _Redirects.hits == ["/start", "/next"], "the forbidden hop was never requested"


def test_hops_name_their_host_in_ascii_and_send_a_quoted_path(site: str) -> None:
    port = int(site.rsplit(":", 1)[1])
    _Redirects.routes = {"/caf%C3%A9": (308, f"http://bücher.test:{port}/ok"), "/ok": (200, None)}
    policy = _local_policy(**{"bücher_test": "127.0.0.1"})
    assert policy.resolve_redirects(f"{site}/café") == f"http://bücher.test:{port}/ok"
    assert _Redirects.hits == ["/caf%C3%A9", "/ok"]
    assert _Redirects.hosts == [f"127.0.0.1:{port}", f"xn--bcher-kva.test:{port}"]


def test_redirect_loops_stop(site: str) -> None:
    _Redirects.routes = {"/loop": (302, "/loop")}
    with pytest.raises(InvalidRequest, match="redirects more than 5 times"):
        _local_policy().resolve_redirects(f"{site}/loop")
    assert len(_Redirects.hits) == 6


def test_a_hop_that_cannot_be_reached_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(UpstreamUnavailable, match="to check its redirects"):
        _local_policy().resolve_redirects(f"http://127.0.0.1:{port}/")


def test_a_host_trusted_by_name_is_not_requested() -> None:
    policy = UrlPolicy.from_entries([".example.in"], resolver=FakeDns({}))
    assert policy.resolve_redirects("https://adpulse.example.in/story") == "https://adpulse.example.in/story"


@pytest.mark.parametrize(("value", "says"), [
    ("10.0.0.0/33", "'10.0.0.0/33' is not a valid address or CIDR"),
    ("fd00::/129", "is not a valid address or CIDR"),
    ("Intranet_Host", "'Intranet_Host' is not a CIDR, a lower-case host name or a .domain suffix"),
    ("*.example.in", "is not a CIDR"),
])
def test_a_malformed_allow_list_fails_at_startup_naming_the_entry(value: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        Settings(**{**BASE_ENV, "MUSE_URL_ALLOWLIST": value})  # type: ignore[arg-type]
    allowed = Settings(**{**BASE_ENV, "MUSE_URL_ALLOWLIST": "127.0.0.0/8, ::1,localhost,.example.in"})  # type: ignore[arg-type]
    assert allowed.url_allowlist == ["127.0.0.0/8", "::1", "localhost", ".example.in"]
