"""Public-URL checks for anything Muse fetches on a user's behalf (SSRF).

A URL is accepted only if it is http(s), carries no credentials, does not spell an IP address in a
non-standard form (decimal `2130706433`, octal `0177.0.0.1`, hex `0x7f.1`, which resolvers read
differently), does not name a cloud metadata host or a local-only name, and **every** address its
host resolves to is public: not loopback, private (RFC 1918, ULA), link-local, CGNAT, multicast,
reserved, unspecified or a cloud metadata address, also when an IPv6 address embeds one of those
IPv4 addresses (IPv4-mapped, IPv4-compatible, 6to4, Teredo, NAT64).

Redirects are never followed blindly: `resolve_redirects` requests each hop itself with redirects
off, over a connection pinned to the address that was just checked (so a second DNS answer cannot
swap in a private one), and checks the `Location` before requesting it. The final URL is what gets
fetched. Only the status line and headers of each hop are read.

`UrlPolicy.allow` is the one exception, configuration only (`MUSE_URL_ALLOWLIST`, empty in
production): a CIDR entry makes the addresses inside it count as public (the local stack's
`127.0.0.0/8`), a host entry (`localhost`, or `.example.in` for a domain and its subdomains) is
trusted as named, without resolving or probing it (the Tavily emulator's fictional corpus hosts).
DNS goes through `UrlPolicy.resolver`, a `socket.getaddrinfo`-shaped callable, so tests resolve
with a fake.
"""

from __future__ import annotations

import http.client
import ipaddress
import re
import socket
import ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

from shared.errors import InvalidRequest, UpstreamUnavailable
from shared.settings import Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[..., Sequence[tuple[Any, Any, Any, str, tuple[Any, ...]]]]
"""`socket.getaddrinfo(host, port, family=0, type=0, proto=0, flags=0)`: (family, type, proto, canonname, sockaddr)."""

Rule = Literal["metadata", "loopback", "private", "link-local", "shared (CGNAT)", "multicast", "unspecified",
               "reserved", "non-public"]
MAX_URL_LENGTH = 2048
MAX_REDIRECTS = 5
_URL_SAFE = "/?&=%:@!$'()*+,;~[]"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

METADATA_HOSTS = frozenset({
    "metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal",
    "metadata.azure.internal", "metadata.platformequinix.com", "metadata.packet.net",
})
"""Names of cloud instance-metadata services (GCP, AWS, Azure, Equinix)."""
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "169.254.169.253", "169.254.169.123", "100.100.100.200", "192.0.0.192",
    "fd00:ec2::254", "fd00:ec2::23", "fd00:ec2::123",
))
"""AWS IMDS (v4 and v6), ECS task metadata, AWS DNS/NTP, GCP/Azure (169.254.169.254), Alibaba, Oracle."""
_LOCAL_SUFFIXES = (".localhost", ".internal", ".local", ".home.arpa", ".localdomain")

_RANGES: tuple[tuple[Rule, tuple[str, ...]], ...] = (
    ("unspecified", ("0.0.0.0/8", "::/128")),
    ("loopback", ("127.0.0.0/8", "::1/128")),
    ("private", ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fec0::/10")),
    ("link-local", ("169.254.0.0/16", "fe80::/10")),
    ("shared (CGNAT)", ("100.64.0.0/10",)),
    ("multicast", ("224.0.0.0/4", "ff00::/8")),
    ("reserved", ("192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
                  "240.0.0.0/4", "100::/64", "2001:db8::/32", "64:ff9b:1::/48", "2001:2::/48")),
)
_NETWORKS: tuple[tuple[Rule, tuple[Network, ...]], ...] = tuple(
    (rule, tuple(ipaddress.ip_network(n) for n in networks)) for rule, networks in _RANGES)
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*\.?$", re.IGNORECASE)
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(rf"^{_OCTET}(\.{_OCTET}){{3}}$")


def _refuse(field_name: str, problem: str, *, via: str | None = None) -> InvalidRequest:
    subject = f"`{field_name}`" if via is None else f"`{field_name}` redirects to {via[:300]!r}, which"
    return InvalidRequest(f"{subject} {problem}; only public http(s) URLs can be ingested.",
                          details={"field": field_name})


def address_rule(address: Address) -> Rule | None:
    """Why `address` is not public (the rule it breaks), or None if it is.

    IPv6 forms that carry an IPv4 address (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, 6to4
    `2002::/16`, Teredo `2001::/32`, NAT64 `64:ff9b::/96`) are judged by that IPv4 address as well.
    """
    if address in METADATA_ADDRESSES:
        return "metadata"
    for rule, networks in _NETWORKS:
        if any(address in network for network in networks):
            return rule
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return address_rule(embedded)
    return None if address.is_global else "non-public"


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    packed = address.packed
    if packed[:12] == bytes(12) or address in _NAT64:
        return ipaddress.IPv4Address(packed[12:])
    return None


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _describe(address: Address, rule: Rule) -> str:
    article = "an" if rule[0] in "aeiou" else "a"
    what = "cloud metadata" if rule == "metadata" else rule
    embedded = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    carrying = f" (it carries the IPv4 address {embedded})" if embedded is not None and rule != "unspecified" else ""
    return f"{article} {what} address{carrying}"


@dataclass(frozen=True)
class CheckedUrl:
    """A URL that passed the checks, with the host's addresses as checked (empty for an allow-listed host)."""

    url: str
    host: str
    port: int
    addresses: tuple[Address, ...]


@dataclass(frozen=True)
class UrlPolicy:
    """Which URLs may be fetched for a user; see the module docstring."""

    allow_networks: tuple[Network, ...] = ()
    allow_hosts: frozenset[str] = frozenset()
    """Exact host names, or `.domain` entries matching the domain and every subdomain."""
    resolver: Resolver = field(default=socket.getaddrinfo)
    timeout_seconds: float = 10.0
    """Per hop of `resolve_redirects` (connect and headers)."""

    @classmethod
    def from_entries(cls, entries: Iterable[str], *, resolver: Resolver = socket.getaddrinfo,
                     timeout_seconds: float = 10.0) -> UrlPolicy:
        """A policy allowing `entries` (CIDRs, addresses, host names or `.domain` suffixes)."""
        networks: list[Network] = []
        hosts: set[str] = set()
        for entry in (e.strip().lower() for e in entries):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.rstrip("."))
        return cls(allow_networks=tuple(networks), allow_hosts=frozenset(hosts), resolver=resolver,
                   timeout_seconds=timeout_seconds)

    def host_allowed(self, host: str) -> bool:
        """Whether `host` is trusted by name (allow-listed host or domain)."""
        return host in self.allow_hosts or any(
            entry.startswith(".") and (host == entry[1:] or host.endswith(entry)) for entry in self.allow_hosts)

    def address_allowed(self, address: Address) -> bool:
        """Whether `address` is inside an allow-listed network."""
        return any(address.version == n.version and address in n for n in self.allow_networks)

    def check(self, url: str, *, field_name: str = "url", via: str | None = None) -> CheckedUrl:
        """`url` if it is a public http(s) URL after resolving its host; else `InvalidRequest` naming the rule.

        `via` marks `url` as a redirect target, so the message says where the redirect went.
        """
        host, port = static_check(url, field_name=field_name, policy=self, via=via)
        if self.host_allowed(host):
            return CheckedUrl(url=url, host=host, port=port, addresses=())
        literal = _ip_literal(host)
        if literal is not None:
            return CheckedUrl(url=url, host=host, port=port, addresses=(literal,))
        try:
            answers = self.resolver(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise _refuse(field_name, f"host {host!r} does not resolve ({exc})", via=via) from exc
        addresses = tuple(dict.fromkeys(_address(answer[4][0]) for answer in answers))
        if not addresses:
            raise _refuse(field_name, f"host {host!r} does not resolve", via=via)
        for address in addresses:
            rule = address_rule(address)
            if rule is not None and not self.address_allowed(address):
                raise _refuse(field_name, f"resolves to {address}, {_describe(address, rule)}", via=via)
        return CheckedUrl(url=url, host=host, port=port, addresses=addresses)

    def resolve_redirects(self, url: str, *, field_name: str = "url", max_hops: int = MAX_REDIRECTS) -> str:
        """The URL `url` finally lands on, each hop checked before it is requested.

        Requests every hop itself (GET, redirects off, connection pinned to the checked address, headers
        only) and follows 301/302/303/307/308 up to `max_hops` times. A hop to a forbidden address is an
        `InvalidRequest` naming it; an unreachable hop is `UpstreamUnavailable` (retry later). An
        allow-listed host is trusted as named and not requested.
        """
        current, via = url, None
        for _ in range(max_hops + 1):
            checked = self.check(current, field_name=field_name, via=via)
            if not checked.addresses:
                return current
            status, location = self._head_of(checked)
            if status not in REDIRECT_STATUSES or not location:
                return current
            current = via = urljoin(current, location.strip())
        raise _refuse(field_name, f"redirects more than {max_hops} times")

    def _head_of(self, checked: CheckedUrl) -> tuple[int, str | None]:
        parts = urlsplit(checked.url)
        target = quote(urlunsplit(("", "", parts.path or "/", parts.query, "")), safe=_URL_SAFE)
        try:
            host = checked.host.encode("idna").decode("ascii") if ":" not in checked.host else f"[{checked.host}]"
        except UnicodeError as exc:
            raise _refuse("url", f"has a host name that is not valid IDNA ({exc})") from exc
        authority = host if parts.port is None else f"{host}:{parts.port}"
        errors: list[str] = []
        for address in checked.addresses:
            connection = _pinned(parts.scheme, checked.host, str(address), checked.port, self.timeout_seconds)
            try:
                connection.request("GET", target, headers={
                    "Host": authority, "User-Agent": "Muse-URL-check/1", "Accept": "*/*",
                    "Accept-Encoding": "identity"})
                response = connection.getresponse()
                return response.status, response.getheader("Location")
            except (OSError, http.client.HTTPException) as exc:
                errors.append(f"{address}: {exc}")
            finally:
                connection.close()
        raise UpstreamUnavailable(f"Could not reach {checked.url!r} to check its redirects ({'; '.join(errors)}).")


def url_syntax(url: str, *, field_name: str = "url", via: str | None = None) -> tuple[str, int]:
    """The URL's host (lower-case, no brackets or trailing dot) and port, if it is a well-formed http(s) URL.

    Refuses whitespace and control characters, overlong URLs, other schemes, credentials and IPv6 zones.
    """
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise _refuse(field_name, "contains whitespace or control characters", via=via)
    if len(url) > MAX_URL_LENGTH:
        raise _refuse(field_name, f"is longer than {MAX_URL_LENGTH:,} characters", via=via)
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname
    except ValueError as exc:
        raise _refuse(field_name, f"is not a valid URL ({exc})", via=via) from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise _refuse(field_name, f"uses the scheme {parts.scheme or 'none'!r}, not http or https", via=via)
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise _refuse(field_name, "carries credentials (user:password@host)", via=via)
    if not host:
        raise _refuse(field_name, "has no host", via=via)
    host = host.rstrip(".")
    if "%" in host:
        raise _refuse(field_name, f"names an IPv6 zone ({host!r})", via=via)
    return host, port or (443 if parts.scheme.lower() == "https" else 80)


def static_check(url: str, *, field_name: str = "url", policy: UrlPolicy | None = None,
                 via: str | None = None) -> tuple[str, int]:
    """`url_syntax`, then every rule that needs no DNS.

    Refuses non-standard IP spellings, metadata and local-only host names, and IP literals that are
    not public (unless `policy` allows them).
    """
    host, port = url_syntax(url, field_name=field_name, via=via)
    if policy is not None and policy.host_allowed(host):
        return host, port
    literal = _ip_literal(host)
    if literal is None and _NUMERIC_HOST.match(host):
        raise _refuse(field_name, f"spells an IP address in a non-standard form ({host!r}); write it as "
                                  "dotted decimal, e.g. 93.184.216.34", via=via)
    if literal is not None:
        rule = address_rule(literal)
        if rule is not None and not (policy is not None and policy.address_allowed(literal)):
            raise _refuse(field_name, f"points at {literal}, {_describe(literal, rule)}", via=via)
        return host, port
    if host in METADATA_HOSTS:
        raise _refuse(field_name, f"names {host!r}, a cloud metadata host", via=via)
    if host == "localhost" or host.endswith(_LOCAL_SUFFIXES) or "." not in host:
        raise _refuse(field_name, f"names {host!r}, a local-only host", via=via)
    return host, port


def _ip_literal(host: str) -> Address | None:
    """The address a canonical IP literal spells (dotted-quad IPv4 or IPv6), else None."""
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            return None
    return ipaddress.IPv4Address(host) if _DOTTED_QUAD.match(host) else None


def _address(text: str) -> Address:
    return ipaddress.ip_address(text.split("%", 1)[0])


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to `address` while the request names `host`: DNS is not consulted again."""

    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to `address`, verifying the certificate for `host` (SNI and hostname check)."""

    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        self.tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self.tls)
        self.address = address

    def connect(self) -> None:
        raw = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(raw, server_hostname=self.host)


def _pinned(scheme: str, host: str, address: str, port: int, timeout: float) -> http.client.HTTPConnection:
    if scheme.lower() == "https":
        return _PinnedHTTPSConnection(host, address, port, timeout)
    return _PinnedHTTPConnection(host, address, port, timeout)


def url_policy(settings: Settings, *, resolver: Resolver = socket.getaddrinfo) -> UrlPolicy:
    """The deployment's policy: `MUSE_URL_ALLOWLIST` (empty in production) and the system resolver."""
    return UrlPolicy.from_entries(settings.url_allowlist, resolver=resolver,
                                  timeout_seconds=settings.url_check_timeout_seconds)
