"""Webhook URL rules as the sender applies them at send time (the server's are in tests/api), and
the per-host bound of attempts at once: pure logic, no receiver and no service."""

from __future__ import annotations

import ipaddress

import pytest

from thumbnailify.settings import WebhookSettings
from thumbnailify.webhook_urls import CallbackRefused, check_addresses, check_url, embedded_ipv4, parse_allowed_hosts
from thumbnailify.worker.webhooks.runner import HostSlots, host_of
from thumbnailify.worker.webhooks.sender import post

SECRET = "whsec_test"


# -- the URL rules at send time -------------------------------------------------------------------
def conf(allowed: str) -> WebhookSettings:
    return WebhookSettings(secret=SECRET, allowed_hosts=allowed, timeout=1.0)


@pytest.mark.parametrize(("url", "allowed", "refused_because"), [
    ("http://127.0.0.1:9/x", "*.example.com", "not in webhooks.allowed_hosts"),
    ("http://localhost:9/x", "*.localhost", "not in webhooks.allowed_hosts"),  # the wildcard needs a subdomain
    ("file:///etc/passwd", "127.0.0.1", "http"),
    ("http://169.254.169.254/latest", "169.254.169.254", "metadata"),
    ("http://nonexistent.invalid/x", "nonexistent.invalid", "does not resolve"),
])
def test_send_time_checks_refuse_without_connecting(url: str, allowed: str, refused_because: str) -> None:
    attempt = post(url, b"{}", "event", conf(allowed))
    assert attempt.status is None and not attempt.delivered
    assert attempt.error.startswith("refused") and refused_because in attempt.error


@pytest.mark.parametrize(("host_entry", "addresses", "allowed"), [
    ("hooks.example.com", ["93.184.216.34"], True),
    ("*.example.com", ["93.184.216.34"], True),
    ("*.example.com", ["10.1.2.3"], False),  # a wildcard never reaches private addresses
    ("*.example.com", ["93.184.216.34", "127.0.0.1"], False),  # one bad answer is enough
    ("*.example.com", ["::ffff:127.0.0.1"], False),
    ("*.example.com", ["100.64.0.1"], False),
    ("*.example.com", ["224.0.0.1"], False),
    ("*.example.com", ["fd00:ec2::254"], False),
    ("hooks.example.com", ["10.1.2.3"], True),  # listed exactly: an internal receiver
    ("hooks.example.com", ["169.254.169.254"], False),  # but never the metadata service
    # IPv6 forms that carry an IPv4 address are judged by that address
    ("*.example.com", ["64:ff9b::7f00:1"], False),  # NAT64 (RFC 6052) of 127.0.0.1
    ("*.example.com", ["64:ff9b::a9fe:a9fe"], False),  # NAT64 of the metadata address
    ("hooks.example.com", ["64:ff9b::a9fe:a9fe"], False),  # ... refused even when listed exactly
    ("*.example.com", ["64:ff9b::a00:1"], False),  # NAT64 of 10.0.0.1
    ("*.example.com", ["64:ff9b::808:808"], True),  # NAT64 of 8.8.8.8: public
    ("*.example.com", ["64:ff9b:1::808:808"], False),  # local-use NAT64 (RFC 8215), whatever it carries
    ("*.example.com", ["::7f00:1"], False),  # IPv4-compatible 127.0.0.1
    ("*.example.com", ["::a9fe:a9fe"], False),  # IPv4-compatible metadata address
    ("*.example.com", ["::ffff:0:7f00:1"], False),  # IPv4-translated (RFC 2765) 127.0.0.1
    ("*.example.com", ["::ffff:0:a9fe:a9fe"], False),
    ("*.example.com", ["::ffff:169.254.169.254"], False),  # IPv4-mapped
    ("hooks.example.com", ["::ffff:169.254.169.254"], False),
    ("*.example.com", ["2002:7f00:1::1"], False),  # 6to4 of 127.0.0.1
    ("*.example.com", ["2002:a9fe:a9fe::1"], False),  # 6to4 of the metadata address
    ("hooks.example.com", ["2002:a9fe:a9fe::1"], False),
    ("*.example.com", ["2002:c0a8:101::1"], False),  # 6to4 of 192.168.1.1
    ("*.example.com", ["2001:0:4136:e378:8000:63bf:80ff:fffe"], False),  # Teredo, client 127.0.0.1 XORed
    ("hooks.example.com", ["2001:0:4136:e378:8000:63bf:5601:5601"], False),  # Teredo, client 169.254.169.254
    ("*.example.com", ["fec0::1"], False),  # site-local (deprecated, RFC 3879)
    ("*.example.com", ["2606:4700::6810:84e5"], True),  # a public IPv6 address carries nothing
])
def test_resolved_addresses_against_the_rules(host_entry: str, addresses: list[str], allowed: bool) -> None:
    target = check_url("https://hooks.example.com/x", parse_allowed_hosts(host_entry))
    if allowed:
        assert [str(a) for a in check_addresses(target, addresses)]
    else:
        with pytest.raises(CallbackRefused):
            check_addresses(target, addresses)


@pytest.mark.parametrize(("address", "carried"), [
    ("64:ff9b::7f00:1", ["127.0.0.1"]),
    ("::7f00:1", ["127.0.0.1"]),
    ("::ffff:0:7f00:1", ["127.0.0.1"]),
    ("::ffff:7f00:1", ["127.0.0.1"]),
    ("2002:a9fe:a9fe::1", ["169.254.169.254"]),
    ("2001:0:4136:e378:8000:63bf:5601:5601", ["65.54.227.120", "169.254.169.254"]),
    ("::1", []),
    ("2606:4700::6810:84e5", []),
    ("93.184.216.34", []),
])
def test_the_ipv4_addresses_an_address_carries(address: str, carried: list[str]) -> None:
    assert [str(a) for a in embedded_ipv4(ipaddress.ip_address(address))] == carried


@pytest.mark.parametrize(("url", "sent"), [
    ("http://hooks.example.com/hook/\u00e9?x=\u00fc", "http://hooks.example.com/hook/%C3%A9?x=%C3%BC"),
    ("http://hooks.example.com/a%2Fb/%zz?q=%E2%82%AC&r=1", "http://hooks.example.com/a%2Fb/%25zz?q=%E2%82%AC&r=1"),
    ("http://hooks.example.com/a<b>?c=\"d\"", "http://hooks.example.com/a%3Cb%3E?c=%22d%22"),
    ("https://HOOKS.example.com:8443/x/y;p=1?a=b/c?d#f", "https://hooks.example.com:8443/x/y;p=1?a=b/c?d#f"),
    ("http://b\u00fccher.example.com/\u20ac", "http://xn--bcher-kva.example.com/%E2%82%AC"),
    ("http://hooks.example.com", "http://hooks.example.com"),
])
def test_a_url_passes_in_its_ascii_form(url: str, sent: str) -> None:
    target = check_url(url, parse_allowed_hosts("*.example.com, hooks.example.com"))
    assert target.url == sent
    assert check_url(target.url, parse_allowed_hosts("*.example.com, hooks.example.com")).url == sent  # stable


def test_an_internationalised_host_matches_its_listed_name() -> None:
    target = check_url("http://b\u00fccher.example/x", parse_allowed_hosts("B\u00dcCHER.example"))
    assert target.host == "xn--bcher-kva.example" and target.listed_exactly
    with pytest.raises(CallbackRefused, match="internationalised"):
        check_url("http://\u00e9" + "x" * 70 + ".example/", parse_allowed_hosts("*.example"))


# -- attempts at once ----------------------------------------------------------------------------
def test_host_slots_bound_each_host_on_its_own() -> None:
    slots = HostSlots(2)
    with slots.slot("a:80") as first, slots.slot("a:80") as second, slots.slot("a:80") as third, \
            slots.slot("b:80") as other:
        assert (first, second, third, other) == (True, True, False, True)
    with slots.slot("a:80") as again:
        assert again and slots.taken == {"a:80": 1}
    assert not slots.taken


@pytest.mark.parametrize(("url", "host"), [
    ("http://127.0.0.1:8080/x", "127.0.0.1:8080"),
    ("https://Hooks.Example.com/x", "hooks.example.com:443"),
    ("https://hooks.example.com:443/y", "hooks.example.com:443"),
    ("http://[::1]:99999/", ""),  # invalid: refused by the sender without connecting
])
def test_host_of(url: str, host: str) -> None:
    assert host_of(url) == host
