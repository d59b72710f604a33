"""Header hygiene for a proxy, per RFC 9110 section 7.6. Pure.

A proxy forwards end-to-end header fields unchanged and removes hop-by-hop ones: the
``Connection`` field, every field it names, and the fields known to be hop-by-hop
whether or not they are named (``Keep-Alive``, ``Proxy-Connection``, ``TE``,
``Trailer``, ``Transfer-Encoding``, ``Upgrade``). ``Host`` is set by the outbound
client for the upstream, and ``Content-Length`` is recomputed for the body actually
sent. Client-supplied ``x-overlay-*`` fields are removed so that nobody outside can
steer routing or impersonate the gateway toward the host.
"""

from __future__ import annotations

from collections.abc import Iterable

from multidict import CIMultiDict, CIMultiDictProxy

__all__ = [
    "HOP_BY_HOP",
    "OVERLAY_PREFIX",
    "Pairs",
    "forward_request_headers",
    "forward_response_headers",
]

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
    "upgrade",
})
OVERLAY_PREFIX = "x-overlay-"
_REQUEST_DROP = HOP_BY_HOP | {"host", "content-length"}
_RESPONSE_DROP = HOP_BY_HOP | {"content-length"}
VIA = "1.1 overlay-gateway"

Headers = CIMultiDict[str] | CIMultiDictProxy[str]
Pairs = list[tuple[str, str]]


def _nominated(headers: Headers) -> set[str]:
    """Field names listed in ``Connection`` (comma-separated tokens, any case)."""
    named: set[str] = set()
    for value in headers.getall("Connection", ()):
        named.update(t.strip().lower() for t in value.split(",") if t.strip())
    return named


def forward_request_headers(
    headers: Headers, *, client_ip: str | None, scheme: str, host: str | None,
    extra: Iterable[tuple[str, str]] = (), keep_length: bool = False,
    replace: frozenset[str] = frozenset(),
) -> Pairs:
    """What to send upstream for a client request with ``headers``, as (name, value) pairs
    (what aiohttp takes without another copy).

    Hop-by-hop and client ``x-overlay-*`` fields are removed; ``X-Forwarded-For`` gets the
    client address appended, ``X-Forwarded-Proto``/``X-Forwarded-Host`` are set when the
    client did not set them, ``Via`` is appended (list fields split over several lines are
    joined, RFC 9110 section 5.3), and ``extra`` (the gateway's own ``x-overlay-*`` fields)
    is added last. ``keep_length`` keeps ``Content-Length`` (for a body passed through as
    a stream of known length). ``replace`` (lower-case names) drops the client's fields
    that ``extra`` brings anew (the gateway's own ``traceparent`` when it traces).
    """
    drop = _REQUEST_DROP | _nominated(headers) if "Connection" in headers else _REQUEST_DROP
    if keep_length:
        drop = drop - {"content-length"}
    if replace:
        drop = drop | replace
    out: Pairs = []
    forwarded_for: list[str] = []
    via: list[str] = []
    has_proto = has_host = False
    for name, value in headers.items():
        lower = name.lower()
        if lower in drop or lower.startswith(OVERLAY_PREFIX):
            continue
        if lower == "x-forwarded-for":
            if value.strip():
                forwarded_for.append(value)
            continue
        if lower == "via":
            if value.strip():
                via.append(value)
            continue
        if lower == "x-forwarded-proto":
            has_proto = True
        elif lower == "x-forwarded-host":
            has_host = True
        out.append((name, value))
    if client_ip:
        forwarded_for.append(client_ip)
    if forwarded_for:
        out.append(("X-Forwarded-For", ", ".join(forwarded_for)))
    if not has_proto:
        out.append(("X-Forwarded-Proto", scheme))
    if host and not has_host:
        out.append(("X-Forwarded-Host", host))
    via.append(VIA)
    out.append(("Via", ", ".join(via)))
    out.extend(extra)
    return out


def forward_response_headers(headers: Headers, *, keep_length: bool = False) -> Pairs:
    """What to send the client for an upstream response with ``headers``: everything but
    hop-by-hop fields (``Content-Length`` only with ``keep_length``), plus ``Via``."""
    drop = _RESPONSE_DROP | _nominated(headers) if "Connection" in headers else _RESPONSE_DROP
    if keep_length:
        drop = drop - {"content-length"}
    out: Pairs = []
    via: list[str] = []
    for name, value in headers.items():
        lower = name.lower()
        if lower in drop:
            continue
        if lower == "via":
            if value.strip():
                via.append(value)
            continue
        out.append((name, value))
    via.append(VIA)
    out.append(("Via", ", ".join(via)))
    return out
