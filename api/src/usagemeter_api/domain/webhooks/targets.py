"""The guard on webhook URLs: only http(s) to public addresses, checked when registered and before each send.

An admin token must not turn the API into a client of the networks it sits in (cloud metadata, the
ClickHouse server, a loopback admin port). Every address a hostname resolves to must be global; the
sender then connects to the address checked (:func:`pinned_url`), so a name that resolves elsewhere
between the check and the connection cannot swap it. ``allow_private`` lifts the address check, for
development and tests (``USAGEMETER_WEBHOOK_ALLOW_PRIVATE_TARGETS``).
"""

from __future__ import annotations

import ipaddress
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

MAX_URL_LENGTH = 2048
_SCHEMES = {"http": 80, "https": 443}
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(ValueError):
    """A webhook URL the API will not send to; its text is a one-line reason."""


class TargetUnresolved(TargetRefused):
    """A webhook URL whose host does not resolve (now: a later attempt may find it)."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where a webhook URL points: its parts, and the addresses that passed the check once resolved."""

    url: str
    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...] = ()


def parse_target(url: str) -> Target:
    """The parts of ``url`` (no DNS); TargetRefused unless it is a plain http(s) URL with a host."""
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url):
        raise TargetRefused("the URL holds whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"the URL cannot be read: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise TargetRefused(f"only http and https URLs are sent to, not {scheme or 'a URL without a scheme'}")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("the URL must not carry a user name or password")
    if parts.fragment:
        raise TargetRefused("the URL must not have a fragment")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise TargetRefused("the URL has no host")
    if port == 0:
        raise TargetRefused("port 0 is not a port")
    try:
        host = host.encode("idna").decode("ascii") if not _is_literal(host) else host
    except UnicodeError:
        raise TargetRefused(f"the host {host[:100]!r} is not a valid name") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    port = port or _SCHEMES[scheme]
    netloc = (f"[{host}]" if ":" in host else host) + ("" if port == _SCHEMES[scheme] else f":{port}")
    return Target(f"{scheme}://{netloc}{path}", scheme, host, port, path)


def resolve_target(target: Target, *, allow_private: bool) -> Target:
    """``target`` with the addresses its host resolves to; TargetRefused if one is not public (unless allowed)."""
    if not allow_private and target.host.lower() in _LOCAL_NAMES:
        raise TargetRefused(f"{target.host} is this machine")
    try:
        found = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise TargetUnresolved(f"the host {target.host[:100]} does not resolve") from None
    addresses = list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in found))
    if not addresses:
        raise TargetUnresolved(f"the host {target.host[:100]} does not resolve")
    if not allow_private:
        for address in addresses:
            reason = _not_public(ipaddress.ip_address(address))
            if reason is not None:
                raise TargetRefused(f"{target.host[:100]} resolves to {address}, {reason}")
    return replace(target, addresses=tuple(addresses))


def pinned_url(target: Target, address: str) -> str:
    """``target``'s URL with ``address`` in place of its host (the request then names the host in ``Host``)."""
    host = f"[{address}]" if ":" in address else address
    return f"{target.scheme}://{host}:{target.port}{target.path}"


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _not_public(address: Address) -> str | None:
    """Why ``address`` is no place to send to, or None for a global unicast address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    checks = (
        (address.is_unspecified, "the unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address (cloud metadata lives there)"),
        (address.is_private, "a private address"),
        (address.is_multicast, "a multicast address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a public address"),
    )
    return next((reason for failed, reason in checks if failed), None)
