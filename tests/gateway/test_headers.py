"""Proxy header hygiene (RFC 9110 section 7.6): hop-by-hop fields removed, end-to-end ones
passed through unchanged and in order, forwarding fields appended, client x-overlay-* gone."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from overlay_sdk.gateway.headers import (
    HOP_BY_HOP,
    forward_request_headers,
    forward_response_headers,
)

VIA = "1.1 overlay-gateway"
KNOWN_HOP_BY_HOP = ["Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer",
                    "Transfer-Encoding", "Upgrade"]

Pairs = list[tuple[str, str]]
Forward = Callable[[Pairs], CIMultiDict[str]]


def request(pairs: Pairs, *, client_ip: str | None = None, scheme: str = "http",
            host: str | None = None, extra: Sequence[tuple[str, str]] = (),
            keep_length: bool = False) -> CIMultiDict[str]:
    return CIMultiDict(forward_request_headers(
        CIMultiDict(pairs), client_ip=client_ip, scheme=scheme, host=host, extra=extra,
        keep_length=keep_length))


def response(pairs: Pairs, *, keep_length: bool = False) -> CIMultiDict[str]:
    return CIMultiDict(forward_response_headers(CIMultiDict(pairs), keep_length=keep_length))


def names(headers: CIMultiDict[str]) -> list[str]:
    return [n.lower() for n in headers]


# --- hop-by-hop ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", KNOWN_HOP_BY_HOP)
@pytest.mark.parametrize("spelling", [str, str.lower, str.upper])
def test_known_hop_by_hop_fields_are_removed_both_ways(
        name: str, spelling: Callable[[str], str]) -> None:
    field = spelling(name)
    pairs = [("Accept", "text/html"), (field, "x"), ("X-Custom", "kept")]
    for out in (request(pairs), response(pairs)):
        assert name.lower() not in names(out)
        assert out.getall("Accept") == ["text/html"]
        assert out.getall("X-Custom") == ["kept"]


@pytest.mark.parametrize("connection", [
    "close, X-Secret, x-token",
    "  X-SECRET ,,x-Token  ",
    "x-secret,x-token",
    "keep-alive,\tX-Secret , X-Token,",
])
def test_fields_nominated_by_connection_are_removed_in_any_case(connection: str) -> None:
    pairs = [("Connection", connection), ("x-secret", "1"), ("X-TOKEN", "2"),
             ("X-Other", "3")]
    for out in (request(pairs), response(pairs)):
        assert "x-secret" not in names(out)
        assert "x-token" not in names(out)
        assert out.getall("X-Other") == ["3"]


def test_fields_nominated_by_any_of_several_connection_headers_are_removed() -> None:
    pairs = [("Connection", "X-A"), ("X-A", "1"), ("X-B", "2"), ("Connection", "x-b"),
             ("X-C", "3")]
    for out in (request(pairs), response(pairs)):
        assert names(out)[:1] == ["x-c"]
        assert "x-a" not in names(out)
        assert "x-b" not in names(out)


def test_a_field_not_nominated_is_kept_even_if_a_prefix_is_nominated() -> None:
    out = request([("Connection", "X-Trace"), ("X-Trace-Id", "abc"), ("X-Trace", "t")])
    assert out.getall("X-Trace-Id") == ["abc"]
    assert "x-trace" not in names(out)


def test_nominations_on_a_later_connection_line_after_an_empty_one_are_honoured() -> None:
    pairs = [("Connection", ""), ("Connection", "X-Secret"), ("X-Secret", "1")]
    assert "x-secret" not in names(request(pairs))
    assert "x-secret" not in names(response(pairs))


def test_hop_by_hop_set_is_exactly_the_rfc_list() -> None:
    assert {n.lower() for n in KNOWN_HOP_BY_HOP} == HOP_BY_HOP


# --- Host and Content-Length ---------------------------------------------------------------


def test_host_and_content_length_are_dropped_from_requests() -> None:
    out = request([("Host", "crm.internal"), ("content-length", "12"), ("Accept", "*/*")])
    assert "host" not in names(out)
    assert "content-length" not in names(out)
    assert out["Accept"] == "*/*"


def test_keep_length_keeps_content_length_but_never_host() -> None:
    out = request([("Host", "crm.internal"), ("Content-Length", "12")], keep_length=True)
    assert out.getall("Content-Length") == ["12"]
    assert "host" not in names(out)


def test_response_content_length_dropped_unless_kept() -> None:
    assert "content-length" not in names(response([("Content-Length", "5")]))
    assert response([("Content-Length", "5")], keep_length=True).getall("Content-Length") == ["5"]


def test_keep_length_does_not_keep_hop_by_hop_fields() -> None:
    pairs = [("Transfer-Encoding", "chunked"), ("Content-Length", "5")]
    assert names(request(pairs, keep_length=True))[:1] == ["content-length"]
    assert "transfer-encoding" not in names(response(pairs, keep_length=True))


# --- x-overlay-* ---------------------------------------------------------------------------


def test_client_overlay_headers_are_stripped_in_any_case_and_gateway_ones_added() -> None:
    out = request(
        [("X-Overlay-Version", "evil"), ("x-overlay-route", "2"), ("X-OVERLAY-ID", "z"),
         ("Accept", "a")],
        extra=[("x-overlay-overlay", "fraud"), ("x-overlay-version", "fraud:1")],
    )
    assert out.getall("x-overlay-version") == ["fraud:1"]
    assert out.getall("x-overlay-overlay") == ["fraud"]
    assert "x-overlay-route" not in names(out)
    assert "x-overlay-id" not in names(out)
    assert out["Accept"] == "a"


def test_gateway_extra_headers_come_last() -> None:
    out = request([("Accept", "a")], client_ip="10.0.0.1", host="h",
                  extra=[("x-overlay-overlay", "fraud")])
    assert list(out.items())[-1] == ("x-overlay-overlay", "fraud")


# --- forwarding fields ---------------------------------------------------------------------


def test_x_forwarded_for_is_set_to_the_client_address() -> None:
    assert request([], client_ip="10.0.0.7").getall("X-Forwarded-For") == ["10.0.0.7"]


def test_x_forwarded_for_appends_the_client_to_an_existing_chain() -> None:
    out = request([("x-forwarded-for", "203.0.113.5, 198.51.100.2")], client_ip="10.0.0.7")
    assert out.getall("X-Forwarded-For") == ["203.0.113.5, 198.51.100.2, 10.0.0.7"]


def test_x_forwarded_for_untouched_without_a_client_address() -> None:
    assert request([], client_ip=None).get("X-Forwarded-For") is None
    out = request([("X-Forwarded-For", "203.0.113.5")], client_ip=None)
    assert out.getall("X-Forwarded-For") == ["203.0.113.5"]


def test_x_forwarded_for_keeps_every_hop_of_a_chain_split_over_several_lines() -> None:
    out = request([("X-Forwarded-For", "203.0.113.5"), ("X-Forwarded-For", "198.51.100.2")],
                  client_ip="10.0.0.7")
    chain = ", ".join(out.getall("X-Forwarded-For"))
    assert chain == "203.0.113.5, 198.51.100.2, 10.0.0.7"


def test_x_forwarded_proto_and_host_are_set_when_absent() -> None:
    out = request([], scheme="https", host="crm.example.com:8443")
    assert out.getall("X-Forwarded-Proto") == ["https"]
    assert out.getall("X-Forwarded-Host") == ["crm.example.com:8443"]


def test_x_forwarded_host_not_added_without_a_host() -> None:
    assert "x-forwarded-host" not in names(request([], host=None))


def test_x_forwarded_proto_and_host_from_an_earlier_proxy_are_not_overwritten() -> None:
    out = request([("x-forwarded-proto", "https"), ("X-FORWARDED-HOST", "public.example")],
                  scheme="http", host="gateway:8700")
    assert out.getall("X-Forwarded-Proto") == ["https"]
    assert out.getall("X-Forwarded-Host") == ["public.example"]


@pytest.mark.parametrize("forward", [request, response])
def test_via_is_added(forward: Forward) -> None:
    out = forward([("Accept", "a")])
    assert out.getall("Via") == [VIA]


@pytest.mark.parametrize("forward", [request, response])
def test_via_is_appended_to_an_existing_one(forward: Forward) -> None:
    out = forward([("via", "1.0 fred, 1.1 p.example.net")])
    assert out.getall("Via") == [f"1.0 fred, 1.1 p.example.net, {VIA}"]


@pytest.mark.parametrize("forward", [request, response])
def test_via_keeps_every_hop_of_several_lines(forward: Forward) -> None:
    out = forward([("Via", "1.0 fred"), ("Via", "1.1 p.example.net")])
    assert ", ".join(out.getall("Via")) == f"1.0 fred, 1.1 p.example.net, {VIA}"


# --- repeated end-to-end fields ------------------------------------------------------------


def test_repeated_set_cookie_in_a_response_is_preserved_in_order() -> None:
    pairs = [("Set-Cookie", "a=1; Path=/"), ("Content-Type", "text/html"),
             ("Set-Cookie", "b=2; HttpOnly")]
    out = response(pairs)
    assert out.getall("Set-Cookie") == ["a=1; Path=/", "b=2; HttpOnly"]
    assert list(out.items()) == [*pairs, ("Via", VIA)]


def test_repeated_accept_in_a_request_is_preserved_in_order() -> None:
    pairs = [("Accept", "text/html"), ("X-Req", "1"), ("Accept", "application/json")]
    out = request(pairs)
    assert out.getall("Accept") == ["text/html", "application/json"]
    assert list(out.items())[:3] == pairs


def test_input_headers_are_not_modified() -> None:
    incoming: CIMultiDict[str] = CIMultiDict([("Connection", "X-A"), ("X-A", "1"),
                                              ("X-Overlay-V", "2"), ("Host", "h")])
    before = list(incoming.items())
    forward_request_headers(CIMultiDictProxy(incoming), client_ip="1.2.3.4", scheme="http",
                            host="h", extra=[("x-overlay-overlay", "o")])
    forward_response_headers(incoming)
    assert list(incoming.items()) == before


# --- property: end-to-end fields pass through unchanged ------------------------------------

_MANAGED = HOP_BY_HOP | {"host", "content-length", "via", "x-forwarded-for",
                         "x-forwarded-proto", "x-forwarded-host"}
_names = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,14}", fullmatch=True).filter(
    lambda n: n.lower() not in _MANAGED and not n.lower().startswith("x-overlay-"))
_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)
_pairs = st.lists(st.tuples(st.one_of(_names, st.sampled_from(["Accept", "Set-Cookie"])),
                            _values), max_size=8)


@settings(max_examples=60, deadline=None)
@given(pairs=_pairs)
def test_end_to_end_fields_pass_through_unchanged_and_in_order(pairs: Pairs) -> None:
    assert list(response(pairs).items()) == [*pairs, ("Via", VIA)]
    out = list(request(pairs, client_ip="10.0.0.1", scheme="https", host="h").items())
    assert out[:len(pairs)] == pairs
    assert out[len(pairs):] == [("X-Forwarded-For", "10.0.0.1"), ("X-Forwarded-Proto", "https"),
                                ("X-Forwarded-Host", "h"), ("Via", VIA)]
