"""The guard on webhook URLs: where the API will and will not send a delivery.

A webhook URL is chosen by an admin but fetched by the API from inside its own network, so without a
guard it is a way to reach what only the API can reach (server-side request forgery): the loopback
services, the private network, the cloud metadata endpoint at 169.254.169.254. ``parse_target``
checks the URL's syntax when an endpoint is registered; ``resolve_target`` resolves the host before
each delivery and refuses it unless every address it resolves to is a public unicast one.

The sender then connects to ``pinned_url(target, target.addresses[0])`` itself, sending the original
host in the ``Host`` header (and as the TLS server name, for https), so a DNS answer that changes
between the check and the connection (DNS rebinding) cannot point the delivery somewhere else.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

__all__ = [
    "MAX_URL_LENGTH",
    "Target",
    "TargetRefused",
    "TargetUnresolved",
    "parse_target",
    "pinned_url",
    "resolve_target",
]

#: Longest URL accepted; longer ones are no real endpoint and bloat every outbox row.
MAX_URL_LENGTH = 2048

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
# The WHATWG URL rules read a host whose last label is a number as an IPv4 address, and so does
# getaddrinfo ("2130706433", "0x7f.1", "017.0.0.1" octal): only the canonical dotted quad is accepted.
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
# Prefixes of IPv6 addresses that carry an IPv4 address in their last 32 bits and may be routed to it.
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class TargetRefused(ValueError):
    """A webhook URL the API will not send to; str() is a one-line reason for a 422/log."""


class TargetUnresolved(TargetRefused):
    """A webhook URL whose host does not resolve now (a later attempt may find it)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A webhook URL taken apart; ``addresses`` is filled by ``resolve_target``."""

    url: str
    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...] = ()


def parse_target(url: str) -> Target:
    """Check ``url``'s syntax (no DNS) and take it apart; raise ``TargetRefused`` naming what is wrong."""
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"URL is longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise TargetRefused("URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unclosed IPv6 bracket
        raise TargetRefused(f"URL is malformed: {exc}") from None
    try:
        port = parts.port
    except ValueError:
        raise TargetRefused("port is not a number in 1-65535") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise TargetRefused(f"scheme {scheme or '(none)'!r} is not allowed: use http or https")
    if "@" in parts.netloc:
        raise TargetRefused("URL must not contain credentials (user:password@)")
    if "#" in url:
        raise TargetRefused("URL must not contain a fragment (#)")
    if port is not None and not 1 <= port <= 65535:
        raise TargetRefused(f"port {port} is out of range 1-65535")
    host = _normalised_host(parts.hostname or "")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    netloc = _bracketed(host) + (f":{port}" if port is not None else "")
    return Target(f"{scheme}://{netloc}{path}", scheme, host, port or _DEFAULT_PORTS[scheme], path)


def resolve_target(target: Target, *, allow_private: bool) -> Target:
    """Resolve ``target``'s host and check every address; the target with ``addresses`` filled.

    Unless ``allow_private`` (dev and test setups), a local name or any address that is not public
    unicast (loopback, private, link-local, multicast, reserved, shared, or one of those carried in an
    IPv6 address) refuses the whole target: a name with one bad address among good ones is refused too,
    since the connection may land on any of them. Blocks on DNS: call it off the event loop.
    """
    if not allow_private and _is_local_name(target.host):
        raise TargetRefused(f"host {target.host} is a local name")
    literal = _ip_or_none(target.host)
    addresses = [literal] if literal is not None else _resolved(target.host, target.port)
    if not allow_private:
        for address in addresses:
            reason = _refusal(address)
            if reason:
                shown = "" if literal is not None else f" resolves to {address}, which"
                raise TargetRefused(f"host {target.host}{shown} is {reason}")
    return replace(target, addresses=tuple(dict.fromkeys(str(address) for address in addresses)))


def pinned_url(target: Target, address: str) -> str:
    """``target``'s URL with the host replaced by ``address`` (IPv6 bracketed): what the sender connects to."""
    ip = ipaddress.ip_address(address)
    return f"{target.scheme}://{_bracketed(str(ip))}:{target.port}{target.path}"


def _normalised_host(host: str) -> str:
    """The host lowercased and IDNA-encoded (an IP literal lowercased, as written)."""
    if not host:
        raise TargetRefused("URL has no host")
    if "%" in host:
        raise TargetRefused("host must not carry an IPv6 zone or percent-encoding")
    if _ip_or_none(host) is not None:
        return host.lower()
    try:
        encoded = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise TargetRefused(f"host {host!r} is not a valid hostname") from None
    labels = encoded.rstrip(".").split(".")
    if len(encoded) > 253 or not all(_LABEL.match(label) for label in labels):
        raise TargetRefused(f"host {host!r} is not a valid hostname")
    if _NUMERIC_LABEL.match(labels[-1]):
        raise TargetRefused(f"host {host!r} is not a canonical IPv4 address (use the dotted form a.b.c.d)")
    return encoded


def _ip_or_none(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _resolved(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise TargetUnresolved(f"host {host} does not resolve") from None
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)]
    if not addresses:
        raise TargetUnresolved(f"host {host} does not resolve")
    return addresses


def _refusal(address: IPAddress) -> str:
    """Why the API will not send to ``address`` ("a loopback address"); empty if it may."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        inner = _refusal(embedded) if embedded is not None else ""
        if inner:
            return f"an IPv6 form of {embedded}, {inner}"
        if address.ipv4_mapped is not None:
            return ""  # a mapped address reaches exactly its IPv4 address, which passed
    # is_global alone lets multicast through (224.0.0.0/4 and ff00::/8 count as global), so each is named.
    checks = (
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (not address.is_global, "not a public address"),
    )
    return next((reason for failed, reason in checks if failed), "")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, NAT64, 6to4, Teredo), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in net for net in _NAT64) or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _is_local_name(host: str) -> bool:
    name = host.rstrip(".")
    return name in _LOCAL_NAMES or name.endswith(".localhost")


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host
