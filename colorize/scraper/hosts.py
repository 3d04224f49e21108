"""The one host allow-list for every request the downloader sends (fetch, scrape, robots.txt).

A shared manifest is someone else's file, so its URLs are untrusted: without a policy, `fetch` would
request `http://localhost:8080/admin`, `http://169.254.169.254/` (cloud metadata) or any host a
redirect names. The policy, like pip's `--trusted-host` and curl's redirect protocol limits, says which
hosts may be asked at all:

- by default only `https://images.unsplash.com` (the Unsplash image CDN), on its default port;
- `--allow-host HOST[:PORT]` adds a mirror or a test server (HOST alone: any port, as pip does);
- `scrape --base-url` adds its own host: the user chose it.

The name in the URL is checked, then resolved, and every address must be public (not loopback,
private, link-local, unspecified, multicast or reserved) unless the host was named by the user. IPv4
spelled as one number (`2130706433`), in octal or hex (`0x7f000001`, `0177.0.0.1`), shortened
(`127.1`), IPv6 zones, user-info (`a@b`) and backslashes are refused outright: libc reads those forms
differently from what a reader of the URL sees. Against DNS rebinding, the session's connections
resolve and check the name again and connect only to the addresses that passed (`guarded_adapter`),
so the address checked is the address connected.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as urllib3_connection

from colorize.errors import UsageError

DEFAULT_HOSTS = ("images.unsplash.com",)  # https only, default port: the CDN every Unsplash URL uses
DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)\Z")
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)\Z")
Resolver = Callable[..., list]


class ForbiddenHost(Exception):
    """A URL or connection the host policy refuses; nothing was sent. Not an OSError, so no retry."""


def canonical_host(host: str) -> str:
    """Lower-case name or canonical IP text; ValueError for a name libc could read another way."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.endswith(".") and not host.endswith(".."):
        host = host[:-1]  # `localhost.` is `localhost`
    if "%" in host:
        raise ValueError("IPv6 zone ids are not allowed")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError("not a valid host name") from None
    labels = ascii_host.split(".")
    if not all(_LABEL.match(label) for label in labels):
        raise ValueError("not a valid host name")
    if _NUMERIC_LABEL.match(labels[-1]):  # `2130706433`, `0x7f000001`, `127.1`, `0177.0.0.1`: IPv4 in disguise
        raise ValueError("an IPv4 address must be written as four decimal numbers (e.g. 127.0.0.1)")
    return ascii_host


def is_public(address: str) -> bool:
    """True for a globally routable unicast address, also when an IPv4 one hides inside IPv6."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    inner = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        inner += [a for a in (ip.ipv4_mapped, ip.sixtofour, ip.teredo and ip.teredo[1]) if a]
        if ip in ipaddress.ip_network("64:ff9b::/96"):  # NAT64 embeds the IPv4 address in the low bits
            inner.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return all(a.is_global and not (a.is_multicast or a.is_reserved or a.is_loopback or a.is_link_local
                                    or a.is_private or a.is_unspecified) for a in inner)


def host_port(host: str, port: int | None) -> str:
    """`host:port` as a URL writes it (`[::1]:8000`)."""
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}" if port else shown


def parse_allow_host(value: str) -> tuple[str, int | None]:
    """`HOST`, `HOST:PORT` or `[IPV6]:PORT` -> (canonical host, port or None for any port)."""
    text = value.strip()
    port: int | None = None
    m = re.match(r"^\[([^\]]+)\](?::(\d+))?\Z", text) or re.match(r"^([^:\[\]]+)(?::(\d+))?\Z", text)
    if m is None and text.count(":") > 1:  # a bare IPv6 address, no port
        m = re.match(r"^([0-9a-fA-F:.]+)()\Z", text)
    try:
        if m is None:
            raise ValueError("expected HOST or HOST:PORT")
        host = canonical_host(m.group(1))
        if m.group(2):
            port = int(m.group(2))
            if not 0 < port < 65536:
                raise ValueError("port out of range")
    except ValueError as exc:
        raise UsageError(f"bad --allow-host {value!r}: {exc}",
                         "give HOST or HOST:PORT, e.g. --allow-host mirror.example.org or 127.0.0.1:8000") from None
    return host, port


@dataclass(frozen=True)
class HostPolicy:
    """Which hosts downloads may reach; `check(url)` before a request, `connect_addresses` at connect time."""

    allow_hosts: Sequence[str] = ()
    base_url: str | None = None
    resolver: Resolver = field(default=socket.getaddrinfo, compare=False, repr=False)
    _named: frozenset = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        named = {parse_allow_host(h) for h in self.allow_hosts}
        if self.base_url:
            parts = urlsplit(self.base_url)
            try:
                host = canonical_host(parts.hostname or "")
                port = parts.port or DEFAULT_PORTS.get(parts.scheme)
            except ValueError as exc:
                raise UsageError(f"bad --base-url {self.base_url!r}: {exc}", "e.g. --base-url https://unsplash.com") from None
            named.add((host, port))
        object.__setattr__(self, "allow_hosts", tuple(self.allow_hosts))
        object.__setattr__(self, "_named", frozenset(named))

    def _is_named(self, host: str, port: int) -> bool:
        return (host, port) in self._named or (host, None) in self._named

    def _rule(self, scheme: str, host: str, port: int) -> str:
        """"named" (the user's choice: any address), "default" (must resolve to public addresses), or ""."""
        if self._is_named(host, port):
            return "named"
        if host in DEFAULT_HOSTS and scheme == "https" and port == DEFAULT_PORTS["https"]:
            return "default"
        return ""

    def check(self, url: str) -> tuple[str, ...]:
        """The checked addresses of `url`'s host, or ForbiddenHost saying why it must not be requested."""
        if not isinstance(url, str) or any(c in url for c in "\\\t\r\n ") or any(ord(c) < 32 for c in url):
            raise ForbiddenHost("the URL holds characters that parsers read differently")
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise ForbiddenHost(f"scheme {scheme!r} is not http(s)")
        if "@" in parts.netloc:
            raise ForbiddenHost("URLs with user info (user@host) are not allowed")
        try:
            host = canonical_host(parts.hostname or "")
            port = parts.port or DEFAULT_PORTS[scheme]
        except ValueError as exc:
            raise ForbiddenHost(f"{parts.netloc[:80]}: {exc}") from None
        rule = self._rule(scheme, host, port)
        if not rule:
            where = host_port(host, port)
            raise ForbiddenHost(f"{where} is not an allowed host (add --allow-host {where} to trust it)")
        return self._resolve(host, port, rule)

    def connect_addresses(self, host: str, port: int) -> tuple[str, ...]:
        """At connect time: resolve `host` again and return only checked addresses (DNS rebinding)."""
        try:
            host = canonical_host(host)
        except ValueError as exc:
            raise ForbiddenHost(f"{host[:80]}: {exc}") from None
        rule = "named" if self._is_named(host, port) else "default" if host in DEFAULT_HOSTS else ""
        if not rule:
            raise ForbiddenHost(f"{host_port(host, port)} is not an allowed host")
        return self._resolve(host, port, rule)

    def _resolve(self, host: str, port: int, rule: str) -> tuple[str, ...]:
        infos = self.resolver(host, port, urllib3_connection.allowed_gai_family(), socket.SOCK_STREAM)
        addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} has no address")
        if rule != "named":
            bad = [a for a in addresses if not is_public(a)]
            if bad:
                raise ForbiddenHost(f"{host} resolves to a non-public address ({bad[0]}); name it with --allow-host "
                                    "to trust it")
        return addresses


class _GuardedConnection:
    """urllib3 connection mixin: connect only to the addresses the policy checked just now."""

    host_policy: HostPolicy

    def _new_conn(self):  # type: ignore[override]
        try:
            addresses = self.host_policy.connect_addresses(self._dns_host, self.port)  # type: ignore[attr-defined]
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc  # type: ignore[attr-defined]
        last: Exception | None = None
        for address in addresses:
            try:
                sock = urllib3_connection.create_connection(
                    (address, self.port), self.timeout,  # type: ignore[attr-defined]
                    source_address=self.source_address, socket_options=self.socket_options)  # type: ignore[attr-defined]
            except TimeoutError:
                last = ConnectTimeoutError(self, f"Connection to {self.host} timed out")  # type: ignore[attr-defined]
            except OSError as exc:
                last = NewConnectionError(self, f"Failed to establish a new connection: {exc}")
            else:
                sys.audit("http.client.connect", self, self.host, self.port)  # type: ignore[attr-defined]
                return sock
        assert last is not None
        raise last


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose pools use guarded connections (proxies, if configured, resolve names)."""

    def __init__(self, policy: HostPolicy, **kwargs) -> None:
        self.host_policy = policy
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        policy = self.host_policy
        conn = type("GuardedHTTPConnection", (_GuardedConnection, HTTPConnection), {"host_policy": policy})
        sconn = type("GuardedHTTPSConnection", (_GuardedConnection, HTTPSConnection), {"host_policy": policy})
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": conn}),
            "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": sconn}),
        }
