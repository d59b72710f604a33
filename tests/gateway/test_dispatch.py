"""Dispatch: path globs, sticky keys, per-request routing and forking, and which host
application a request goes to (Directory.host_for, rules in the dispatch docstring)."""

from __future__ import annotations

import dataclasses
import random
import re
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from overlay_sdk.gateway.dispatch import Active, Directory, HostTarget, glob_pattern, request_key
from overlay_sdk.routing import plan
from overlay_sdk.spec import AIOverlaySpec, parse_spec

T0 = datetime(2025, 1, 1, tzinfo=UTC)
T1 = datetime(2025, 1, 2, tzinfo=UTC)


def make_spec(url: str = "http://127.0.0.1:8001", **extra: Any) -> AIOverlaySpec:
    doc: dict[str, Any] = {
        "host": {"url": url},
        "routes": [{"model": "fraud", "version": "1", "weight": 90},
                   {"model": "fraud", "version": "2", "weight": 10}],
    }
    doc.update(extra)
    return parse_spec(doc)


def active(name: str = "fraud", url: str = "http://127.0.0.1:8001", revision: int = 1,
           seed: int | None = 0, **extra: Any) -> Active:
    spec = make_spec(url, **extra)
    made = Active.of(name, revision, spec, plan(spec, overlay=name, revision=revision),
                     committed_at=T0, applied_at=T1)
    return made if seed is None else dataclasses.replace(made, _rng=random.Random(seed))


SHADOW_MODE: dict[str, Any] = {"mode": "shadow", "match": {"method": "POST", "path": "/api/*"}}


# --- glob_pattern --------------------------------------------------------------------------


@pytest.mark.parametrize(("glob", "path", "matches"), [
    ("/api/*", "/api/score", True),
    ("/api/*", "/api/", True),
    ("/api/*", "/api/v1/score/42", True),
    ("/api/*", "/api", False),
    ("/api/*", "/apix/score", False),
    ("/api/*", "/v1/api/score", False),
    ("/api/*/score", "/api/v1/score", True),
    ("/api/*/score", "/api/a/b/score", True),
    ("/api/*/score", "/api/v1/score/extra", False),
    ("*", "", True),
    ("*", "/anything/at/all", True),
    ("/score", "/score", True),
    ("/score", "/score/", False),
    ("/score", "/score\n", False),
    ("/a.b", "/a.b", True),
    ("/a.b", "/aXb", False),
    ("/a+b", "/a+b", True),
    ("/a+b", "/aab", False),
    ("/x?y=[1]", "/x?y=[1]", True),
    ("/x?y=[1]", "/y=1", False),
    ("/(a|b)", "/a", False),
    ("/(a|b)", "/(a|b)", True),
    ("/^$", "/^$", True),
])
def test_glob_pattern(glob: str, path: str, matches: bool) -> None:
    assert (glob_pattern(glob).match(path) is not None) is matches


@settings(max_examples=60, deadline=None)
@given(text=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E,
                                  exclude_characters="*"), max_size=20))
def test_a_glob_without_star_matches_only_itself(text: str) -> None:
    pattern = glob_pattern(text)
    assert pattern.match(text) is not None
    assert pattern.match(text + "x") is None
    assert pattern.match("x" + text) is None


# --- request_key ---------------------------------------------------------------------------


def test_request_key_from_the_sticky_header_in_any_case() -> None:
    spec = make_spec(sticky={"header": "x-user-id"})
    assert request_key(spec, CIMultiDict([("X-User-Id", "u-42")])) == "u-42"
    assert request_key(spec, {"x-user-id": "u-42"}) == "u-42"
    assert request_key(spec, CIMultiDict([("X-Other", "u-42")])) is None
    assert request_key(spec, CIMultiDict([("X-User-Id", "")])) is None


@pytest.mark.parametrize(("cookie", "key"), [
    ("uid=abc", "abc"),
    ("theme=dark; uid=abc; lang=fr", "abc"),
    ('uid="abc"', "abc"),
    ("theme=dark", None),
    ("uid=", None),
    ('uid="abc', None),          # malformed: unterminated quote
    ("uid=abc; $x", "abc"),  # a malformed pair elsewhere does not hide the sticky one
    ("uid", None),
])
def test_request_key_from_the_sticky_cookie(cookie: str, key: str | None) -> None:
    spec = make_spec(sticky={"cookie": "uid"})
    assert request_key(spec, CIMultiDict([("Cookie", cookie)])) == key


def test_request_key_without_a_cookie_header_is_none() -> None:
    spec = make_spec(sticky={"cookie": "uid"})
    assert request_key(spec, CIMultiDict([("X-User-Id", "abc")])) is None


def test_request_key_without_sticky_is_none() -> None:
    spec = make_spec()
    assert request_key(spec, CIMultiDict([("X-User-Id", "a"), ("Cookie", "uid=a")])) is None


@pytest.mark.parametrize("cookie", ['prefs={"a":1}; uid=abc', "msg=hello world; uid=abc"])
def test_an_unrelated_unparseable_cookie_does_not_hide_the_sticky_cookie(cookie: str) -> None:
    spec = make_spec(sticky={"cookie": "uid"})
    assert request_key(spec, CIMultiDict([("Cookie", cookie)])) == "abc"


# --- Active.route --------------------------------------------------------------------------


def test_the_same_sticky_key_always_gets_the_same_version() -> None:
    a = active(sticky={"header": "x-user-id"}, shadow={"model": "fraud", "version": "3",
                                                       "percent": 50})
    for user in (f"user-{i}" for i in range(200)):
        headers = CIMultiDict([("x-user-id", user)])
        first = a.route(headers)
        assert all(a.route(headers) == first for _ in range(5))
        assert first == (a.plan.version_for(user), a.plan.shadows(user))


def test_sticky_keys_spread_over_the_versions_by_weight() -> None:
    a = active(sticky={"cookie": "uid"})
    counts = Counter(a.route(CIMultiDict([("Cookie", f"uid=u{i}")]))[0] for i in range(4000))
    assert set(counts) == {"fraud:1", "fraud:2"}
    assert abs(counts["fraud:2"] / 4000 - 0.10) < 0.03


def test_unkeyed_requests_split_near_the_weights() -> None:
    a = active(seed=7)
    counts = Counter(a.route({})[0] for _ in range(10_000))
    assert set(counts) == {"fraud:1", "fraud:2"}
    assert abs(counts["fraud:1"] / 10_000 - 0.90) <= 0.02
    assert abs(counts["fraud:2"] / 10_000 - 0.10) <= 0.02


def test_sticky_spec_without_the_key_falls_back_to_random() -> None:
    a = active(seed=3, sticky={"header": "x-user-id"})
    versions = {a.route({})[0] for _ in range(500)}
    assert versions == {"fraud:1", "fraud:2"}


def test_unkeyed_requests_are_mirrored_at_the_shadow_share() -> None:
    a = active(seed=11, shadow={"model": "fraud", "version": "3", "percent": 25})
    mirrored = sum(a.route({})[1] for _ in range(10_000))
    assert abs(mirrored / 10_000 - 0.25) <= 0.02


def test_keyed_requests_are_mirrored_at_the_shadow_share() -> None:
    a = active(sticky={"header": "x-user-id"},
               shadow={"model": "fraud", "version": "3", "percent": 25})
    mirrored = sum(a.route(CIMultiDict([("x-user-id", f"k{i}")]))[1] for i in range(4000))
    assert abs(mirrored / 4000 - 0.25) <= 0.03


@pytest.mark.parametrize("sticky", [None, {"header": "x-user-id"}])
def test_nothing_is_mirrored_without_a_shadow(sticky: dict[str, str] | None) -> None:
    extra = {"sticky": sticky} if sticky else {}
    a = active(**extra)
    assert not any(a.route(CIMultiDict([("x-user-id", f"k{i}")]))[1] for i in range(500))


@pytest.mark.parametrize("percent", [0, 100])
def test_shadow_share_extremes(percent: int) -> None:
    a = active(shadow={"model": "fraud", "version": "3", "percent": percent})
    assert {a.route({})[1] for _ in range(500)} == {percent == 100}


# --- Active.forks, timeout ----------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "forks"), [
    ("POST", "/api/score", True),
    ("POST", "/api/v1/score", True),
    ("GET", "/api/score", False),
    ("PUT", "/api/score", False),
    ("POST", "/other", False),
    ("POST", "/api", False),
])
def test_forks_only_matching_method_and_path_in_shadow_mode(
        method: str, path: str, forks: bool) -> None:
    assert active(**SHADOW_MODE).forks(method, path) is forks


def test_match_method_is_case_insensitive_in_the_spec() -> None:
    a = active(mode="shadow", match={"method": "post", "path": "/score"})
    assert a.forks("POST", "/score")


def test_no_forking_outside_shadow_mode_even_with_a_match() -> None:
    a = active(mode="passthrough", match={"method": "POST", "path": "/api/*"})
    assert not a.forks("POST", "/api/score")
    assert not active().forks("POST", "/api/score")


def test_timeout_defaults_to_800_ms_and_follows_the_slo() -> None:
    assert active().timeout == pytest.approx(0.8)
    assert active(slo={"timeoutMs": 300}).timeout == pytest.approx(0.3)


def test_base_url_drops_the_trailing_slash() -> None:
    assert active(url="http://crm.internal:8080/").base_url == "http://crm.internal:8080"


# --- Directory.host_for --------------------------------------------------------------------


def url_of(result: HostTarget | str) -> str:
    assert isinstance(result, HostTarget), result
    return result.base_url


def two_hosts() -> Directory:
    return Directory.of([active("scoring", "http://crm.internal:8080"),
                         active("billing", "https://billing.internal"),
                         active("crm", "http://127.0.0.1:8001")])


@pytest.mark.parametrize(("host", "url"), [
    ("crm.internal:8080", "http://crm.internal:8080"),
    ("CRM.Internal:8080", "http://crm.internal:8080"),
    ("billing.internal:443", "https://billing.internal"),
    ("127.0.0.1:8001", "http://127.0.0.1:8001"),
])
def test_rule_1_the_host_authority_of_an_overlay(host: str, url: str) -> None:
    assert url_of(two_hosts().host_for(host, 8700)) == url


def test_rule_1_default_ports() -> None:
    d = Directory.of([active("a", "http://crm.internal"), active("b", "https://crm.internal")])
    assert url_of(d.host_for("crm.internal:80", 8700)) == "http://crm.internal"
    assert url_of(d.host_for("crm.internal:443", 8700)) == "https://crm.internal"


def test_a_host_without_a_port_is_on_the_default_port_given() -> None:
    d = Directory.of([active("a", "http://crm.internal"), active("b", "http://crm.internal:8700")])
    assert url_of(d.host_for("crm.internal", 80)) == "http://crm.internal"
    assert url_of(d.host_for("crm.internal", 8700)) == "http://crm.internal:8700"


def test_rule_1_wins_over_rule_2() -> None:
    # "crm" is also an overlay name, but crm.internal:8080 is the authority of scoring's host
    assert url_of(two_hosts().host_for("crm.internal:8080", 8700)) == "http://crm.internal:8080"


@pytest.mark.parametrize(("host", "url"), [
    ("scoring.localhost:8700", "http://crm.internal:8080"),
    ("Scoring.LOCALHOST:8700", "http://crm.internal:8080"),
    ("billing.localhost:8700", "https://billing.internal"),
    ("billing.localhost", "https://billing.internal"),
    ("crm.gateway.example:8700", "http://127.0.0.1:8001"),
])
def test_rule_2_the_first_label_is_an_overlay_name(host: str, url: str) -> None:
    assert url_of(two_hosts().host_for(host, 8700)) == url


@pytest.mark.parametrize("host", ["scoring:8700", "scoring", "localhost:8700", None, ""])
def test_ambiguous_requests_get_a_message_naming_the_choices(host: str | None) -> None:
    message = two_hosts().host_for(host, 8700)
    assert isinstance(message, str)
    assert "3 host applications" in message
    for name in ("scoring.localhost", "billing.localhost", "crm.localhost"):
        assert name in message


@pytest.mark.parametrize("host", ["anything:1", "localhost:8700", None])
def test_rule_3_a_single_host_serves_everything(host: str | None) -> None:
    d = Directory.of([active("a", "http://127.0.0.1:8001"), active("b", "http://127.0.0.1:8001/")])
    target = d.host_for(host, 8700)
    assert url_of(target) == "http://127.0.0.1:8001"
    assert isinstance(target, HostTarget)
    assert [a.name for a in target.overlays] == ["a", "b"]


@pytest.mark.parametrize("host", ["127.0.0.1:8001", None])
def test_an_empty_directory_says_so(host: str | None) -> None:
    for d in (Directory(), Directory.of([])):
        message = d.host_for(host, 8700)
        assert isinstance(message, str)
        assert "no overlay" in message


@pytest.mark.parametrize("host", ["[::1]:8001", "[::1]"])
def test_rule_1_ipv6_host(host: str) -> None:
    d = Directory.of([active("a", "http://[::1]:8001"), active("b", "http://127.0.0.1:8002")])
    assert url_of(d.host_for(host, 8001)) == "http://[::1]:8001"


def test_overlays_of_the_same_origin_spelled_differently_are_grouped() -> None:
    d = Directory.of([active("a", "http://crm.internal", **SHADOW_MODE),
                      active("b", "http://CRM.internal:80/", **SHADOW_MODE)])
    target = d.host_for("crm.internal", 80)
    assert isinstance(target, HostTarget)
    assert [a.name for a in target.forking] == ["a", "b"]


# --- grouping and snapshots ----------------------------------------------------------------


def test_overlays_sharing_a_host_are_grouped_and_forking_lists_shadow_mode_ones() -> None:
    d = Directory.of([
        active("zeta", "http://crm.internal:8080", **SHADOW_MODE),
        active("alpha", "http://crm.internal:8080"),
        active("mid", "http://crm.internal:8080/", mode="shadow",
               match={"method": "GET", "path": "/x"}),
        active("other", "http://127.0.0.1:9000", **SHADOW_MODE),
    ])
    target = d.host_for("crm.internal:8080", 8700)
    assert isinstance(target, HostTarget)
    assert target.base_url == "http://crm.internal:8080"
    assert [a.name for a in target.overlays] == ["alpha", "mid", "zeta"]
    assert [a.name for a in target.forking] == ["mid", "zeta"]
    assert list(d.overlays) == ["alpha", "mid", "other", "zeta"]


def test_with_active_makes_a_new_snapshot_and_leaves_the_old_one() -> None:
    old = Directory.of([active("scoring", "http://crm.internal:8080", revision=1)])
    new = old.with_active(active("scoring", "http://crm.internal:8080", revision=2,
                                 **SHADOW_MODE))
    assert old.overlays["scoring"].revision == 1
    assert new.overlays["scoring"].revision == 2
    old_target, new_target = old.host_for(None, 8700), new.host_for(None, 8700)
    assert isinstance(old_target, HostTarget) and isinstance(new_target, HostTarget)
    assert old_target.forking == ()
    assert [a.revision for a in new_target.forking] == [2]


def test_with_active_adds_a_new_overlay_and_changes_dispatch() -> None:
    one = Directory.of([active("scoring", "http://crm.internal:8080")])
    two = one.with_active(active("billing", "http://127.0.0.1:9000"))
    assert set(one.overlays) == {"scoring"}
    assert set(two.overlays) == {"billing", "scoring"}
    assert url_of(one.host_for("nowhere:1", 8700)) == "http://crm.internal:8080"
    assert isinstance(two.host_for("nowhere:1", 8700), str)
    assert url_of(two.host_for("billing.localhost:8700", 8700)) == "http://127.0.0.1:9000"


def test_without_makes_a_new_snapshot_and_leaves_the_old_one() -> None:
    both = Directory.of([active("scoring", "http://crm.internal:8080"),
                         active("billing", "http://127.0.0.1:9000")])
    rest = both.without("billing")
    assert set(both.overlays) == {"billing", "scoring"}
    assert set(rest.overlays) == {"scoring"}
    assert url_of(both.host_for("billing.localhost:8700", 8700)) == "http://127.0.0.1:9000"
    # billing's host is gone: the single remaining host takes everything (rule 3)
    assert url_of(rest.host_for("billing.localhost:8700", 8700)) == "http://crm.internal:8080"
    assert rest.without("scoring").host_for(None, 8700) == Directory().host_for(None, 8700)
    assert both.without("absent").overlays == both.overlays


def test_active_of_compiles_match_and_lowercases_redactions() -> None:
    a = active(**SHADOW_MODE, telemetry={"redact": ["Email", "SSN"]})
    assert isinstance(a.match, re.Pattern)
    assert a.redact == frozenset({"email", "ssn"})
    assert active().match is None
