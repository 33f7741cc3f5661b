"""The webhook URL guard: hostile URLs refused with their reason, public addresses accepted, pinning."""

from __future__ import annotations

import ipaddress

import pytest

from usagemeter_api.domain.webhooks.targets import (
    MAX_URL_LENGTH,
    Target,
    TargetRefused,
    parse_target,
    pinned_url,
    resolve_target,
)

# (url, words the refusal must contain): each one is a way to reach what only the API can reach.
HOSTILE = [
    ("file:///etc/passwd", "scheme 'file' is not allowed"),
    ("gopher://example.com:70/_HELO", "scheme 'gopher' is not allowed"),
    ("//example.com/hook", "scheme '(none)' is not allowed"),
    ("http://user:pw@example.com/", "credentials"),
    ("http://@example.com/", "credentials"),
    ("http://example.com/hook#frag", "fragment"),
    ("http:///hook", "no host"),
    ("http://[::1/", "malformed"),
    ("http://127.0.0.1/", "loopback"),
    ("http://127.8.9.10:9000/", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "IPv6 form of 127.0.0.1, a loopback"),
    ("http://[::ffff:10.0.0.1]/", "IPv6 form of 10.0.0.1, a private"),
    ("http://[64:ff9b::a00:1]/", "IPv6 form of 10.0.0.1, a private"),
    ("http://[2002:7f00:1::]/", "IPv6 form of 127.0.0.1, a loopback"),
    ("http://[::7f00:1]/", "IPv6 form of 127.0.0.1, a loopback"),
    ("http://169.254.169.254/latest/meta-data", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fe80::1%25eth0]/", "IPv6 zone"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://10.1.2.3/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://[fd00::1]/", "private"),
    ("http://100.64.0.1/", "not a public address"),
    ("http://224.0.0.1/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://255.255.255.255/", "reserved"),
    ("http://localhost:8080/", "local name"),
    ("http://LOCALHOST./", "local name"),
    ("http://api.localhost/", "local name"),
    ("http://2130706433/", "not a canonical IPv4 address"),
    ("http://0x7f.1/", "not a canonical IPv4 address"),
    ("http://017.0.0.1/", "not a canonical IPv4 address"),
    ("http://127.1/", "not a canonical IPv4 address"),
    ("http://a..b/", "not a valid hostname"),
    ("http://exa<mple.com/", "not a valid hostname"),
    ("https://example.com/" + "a" * 3 * 1024, f"longer than {MAX_URL_LENGTH}"),
    ("https://example.com/a\nb", "whitespace or control"),
    ("https://example.com/a b", "whitespace or control"),
    ("https://example.com/a\x00", "whitespace or control"),
    ("http://example.com:0/", "port 0 is out of range"),
    ("http://example.com:70000/", "port is not a number in 1-65535"),
    ("http://example.com:http/", "port is not a number in 1-65535"),
]


_MAPPED = ipaddress.ip_address("::ffff:93.184.216.34")


def _guarded(url: str) -> Target:
    return resolve_target(parse_target(url), allow_private=False)


@pytest.mark.parametrize(("url", "reason"), HOSTILE, ids=[url[:48] for url, _ in HOSTILE])
def test_a_hostile_url_is_refused_with_its_reason(url: str, reason: str) -> None:
    with pytest.raises(TargetRefused) as refused:
        _guarded(url)
    assert reason in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_decimal_ip_that_dns_resolves_to_loopback_is_refused_by_the_resolve_check() -> None:
    # parse_target refuses this form already; the resolve check must hold on its own, since
    # getaddrinfo reads "2130706433" as 127.0.0.1.
    target = Target("http://2130706433/", "http", "2130706433", 80, "/")
    with pytest.raises(TargetRefused, match=r"resolves to 127\.0\.0\.1, which is a loopback address"):
        resolve_target(target, allow_private=False)


def test_a_name_that_does_not_resolve_is_refused() -> None:
    # .invalid is reserved (RFC 6761): it never resolves, so this needs no network.
    with pytest.raises(TargetRefused, match="does not resolve"):
        _guarded("https://hooks.does-not-exist.invalid/a")


@pytest.mark.parametrize(
    ("url", "address", "pinned"),
    [
        ("https://93.184.216.34/hooks/usage?src=um", "93.184.216.34", "https://93.184.216.34:443/hooks/usage?src=um"),
        ("http://[2606:4700::1111]:8080", "2606:4700::1111", "http://[2606:4700::1111]:8080/"),
        # How str() writes a mapped IPv6 address changed in Python 3.13 ("::ffff:5db8:d822" before).
        ("http://[::FFFF:93.184.216.34]/", str(_MAPPED), f"http://[{_MAPPED}]:80/"),
    ],
)
def test_a_public_literal_address_is_accepted_without_dns(url: str, address: str, pinned: str) -> None:
    target = _guarded(url)
    assert target.addresses == (address,)
    assert pinned_url(target, target.addresses[0]) == pinned


def test_parse_normalises_scheme_and_host_and_encodes_idna() -> None:
    target = parse_target("HTTPS://Hooks.Bücher.Example:8443/In/Box?a=1&b=2")
    assert target == Target(
        url="https://hooks.xn--bcher-kva.example:8443/In/Box?a=1&b=2",
        scheme="https",
        host="hooks.xn--bcher-kva.example",
        port=8443,
        path="/In/Box?a=1&b=2",
    )
    assert parse_target("http://example.com").path == "/"
    assert parse_target("http://example.com").port == 80


def test_a_url_of_the_longest_allowed_length_is_accepted() -> None:
    prefix = "https://example.com/"
    url = prefix + "a" * (MAX_URL_LENGTH - len(prefix))
    assert parse_target(url).url == url
    with pytest.raises(TargetRefused, match="longer than"):
        parse_target(url + "a")


@pytest.mark.parametrize(
    ("url", "addresses"),
    [
        ("http://127.0.0.1:8123/hooks", ("127.0.0.1",)),
        ("http://[::1]:8123/hooks", ("::1",)),
        ("http://10.1.2.3/", ("10.1.2.3",)),
        ("http://localhost:8123/hooks", ("127.0.0.1",)),
    ],
)
def test_allow_private_accepts_local_addresses(url: str, addresses: tuple[str, ...]) -> None:
    target = resolve_target(parse_target(url), allow_private=True)
    assert addresses[0] in target.addresses


def test_allow_private_still_refuses_a_name_that_does_not_resolve() -> None:
    with pytest.raises(TargetRefused, match="does not resolve"):
        resolve_target(parse_target("http://nothing.invalid/"), allow_private=True)


def test_pinned_url_brackets_ipv6_and_keeps_port_and_path() -> None:
    target = parse_target("https://hooks.example.com:9443/usage/a?x=1")
    assert pinned_url(target, "203.0.113.7") == "https://203.0.113.7:9443/usage/a?x=1"
    assert pinned_url(target, "2001:db8::7") == "https://[2001:db8::7]:9443/usage/a?x=1"
    with pytest.raises(ValueError):
        pinned_url(target, "hooks.example.com")
