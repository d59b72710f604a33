"""Which overlay serves a request, and with which settings. Pure.

An :class:`Active` is what the gateway serves for one overlay: its applied revision, the
:class:`~overlay_sdk.routing.RoutePlan`, and the settings it reads per request. A
:class:`Directory` is an immutable snapshot of all active overlays; the gateway swaps a
new one in on every applied revision, so a request sees one consistent state.

Host traffic selects its host application, in this order:

1. the request's ``Host`` is the authority of an overlay's ``spec.host.url``, or its host
   name alone when one host has that name (DNS or ``/etc/hosts`` points the
   application's name at the gateway);
2. the first label of ``Host`` is an overlay name (``sales-copilot.localhost:8700``;
   browsers resolve ``*.localhost`` to this machine);
3. every overlay has the same host URL: that one.

Otherwise the request is refused with a message saying how to select one. Overlays of
the same host all apply: each one's ``spec.match`` decides which requests it forks.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from overlay_sdk.routing import BUCKETS, RoutePlan
from overlay_sdk.spec import AIOverlaySpec

__all__ = ["Active", "Directory", "HostTarget", "glob_pattern", "request_key"]

DEFAULT_TIMEOUT_MS = 800


def glob_pattern(glob: str) -> re.Pattern[str]:
    """A spec path glob (``*`` = any run of characters) as an anchored regex."""
    return re.compile("".join(".*" if part == "*" else re.escape(part)
                              for part in re.split(r"(\*)", glob)) + r"\Z")


def request_key(spec: AIOverlaySpec, headers: Mapping[str, str]) -> str | None:
    """The sticky key of a request: the spec's header or cookie, else None (random)."""
    sticky = spec.sticky
    if sticky is None:
        return None
    if sticky.header:
        return headers.get(sticky.header) or None
    if sticky.cookie:
        return _cookie(headers.getall("Cookie", ()) if hasattr(headers, "getall")
                       else [headers.get("Cookie", "")], sticky.cookie)
    return None


def _cookie(lines: Iterable[str], name: str) -> str | None:
    """The value of cookie ``name`` in ``Cookie`` lines (RFC 6265 section 5.4 pairs; one
    malformed pair does not hide the others). A quoted value is unquoted."""
    for line in lines:
        for pair in line.split(";"):
            key, sep, value = pair.partition("=")
            if sep and key.strip() == name:
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] == '"':
                    value = value[1:-1]
                return value if value and '"' not in value else None
    return None


@dataclass(frozen=True)
class Active:
    """What the gateway serves for one overlay revision."""

    name: str
    revision: int
    spec: AIOverlaySpec
    plan: RoutePlan
    committed_at: datetime
    applied_at: datetime
    match: re.Pattern[str] | None = None
    redact: frozenset[str] = frozenset()
    _rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    @classmethod
    def of(cls, name: str, revision: int, spec: AIOverlaySpec, plan: RoutePlan, *,
           committed_at: datetime, applied_at: datetime) -> Active:
        """Build from a stored revision's spec and its plan."""
        telemetry = spec.telemetry
        return cls(
            name=name, revision=revision, spec=spec, plan=plan, committed_at=committed_at,
            applied_at=applied_at,
            match=glob_pattern(spec.match.path) if spec.match is not None else None,
            redact=frozenset(f.lower() for f in telemetry.redact) if telemetry else frozenset(),
        )

    @property
    def timeout(self) -> float:
        """Model call timeout in seconds (``spec.slo.timeoutMs``)."""
        slo = self.spec.slo
        return (slo.timeout_ms if slo is not None else DEFAULT_TIMEOUT_MS) / 1000

    @property
    def sample_rate(self) -> float:
        """Share of calls whose payloads are kept (``spec.telemetry.sampleRate``)."""
        return self.spec.telemetry.sample_rate if self.spec.telemetry else 1.0

    @property
    def base_url(self) -> str:
        """The host URL without a trailing slash."""
        return self.spec.host.url.rstrip("/")

    def route(self, headers: Mapping[str, str]) -> tuple[str, bool]:
        """(version serving this request, whether it is mirrored to the shadow)."""
        key = request_key(self.spec, headers)
        plan = self.plan
        if key is None:
            version = plan.versions[plan.assignment[self._rng.randrange(BUCKETS)]]
            shadow = plan.shadow is not None and self._rng.random() * 100 < plan.shadow_percent
            return version, shadow
        return plan.version_for(key), plan.shadows(key)

    def forks(self, method: str, path: str) -> bool:
        """Whether a host request is forked to the model (shadow mode + ``spec.match``)."""
        if self.spec.mode != "shadow" or self.match is None or self.spec.match is None:
            return False
        return method == self.spec.match.method and self.match.match(path) is not None


@dataclass(frozen=True)
class HostTarget:
    """One host application and the overlays in front of it."""

    base_url: str
    overlays: tuple[Active, ...]
    forking: tuple[Active, ...]


def _authority(url: str) -> str:
    """``host:port`` of a URL, lower case, with the scheme's default port made explicit and
    IPv6 addresses in brackets (as they appear in a Host header)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = (parts.hostname or "").lower()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _host_key(url: str) -> str:
    """One key for every spelling of the same host URL (case, default port, trailing /)."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{_authority(url)}{parts.path.rstrip('/')}"


@dataclass(frozen=True)
class Directory:
    """An immutable snapshot of every active overlay, indexed for request dispatch."""

    overlays: Mapping[str, Active] = field(default_factory=dict)
    _hosts: Mapping[str, HostTarget] = field(default_factory=dict)
    _by_authority: Mapping[str, HostTarget] = field(default_factory=dict)
    _by_label: Mapping[str, HostTarget] = field(default_factory=dict)

    @classmethod
    def of(cls, actives: Iterable[Active]) -> Directory:
        """Index ``actives`` by host URL, host authority and overlay name."""
        overlays = {a.name: a for a in sorted(actives, key=lambda a: a.name)}
        grouped: dict[str, list[Active]] = {}
        for active in overlays.values():
            grouped.setdefault(_host_key(active.base_url), []).append(active)
        hosts = {
            key: HostTarget(group[0].base_url, tuple(group),
                            tuple(a for a in group if a.spec.mode == "shadow"))
            for key, group in grouped.items()
        }
        return cls(
            overlays=overlays,
            _hosts=hosts,
            _by_authority={_authority(t.base_url): t for t in hosts.values()},
            _by_label={a.name: hosts[_host_key(a.base_url)] for a in overlays.values()},
        )

    def with_active(self, active: Active) -> Directory:
        """A new snapshot where ``active`` replaces its overlay's entry."""
        return Directory.of({**self.overlays, active.name: active}.values())

    def without(self, name: str) -> Directory:
        """A new snapshot without overlay ``name``."""
        return Directory.of(a for n, a in self.overlays.items() if n != name)

    def host_for(self, host_header: str | None, default_port: int = 80) -> HostTarget | str:
        """The host application a request with ``Host: host_header`` goes to, or a message
        saying why none was chosen. ``default_port``: the port a Host without one means."""
        if host_header:
            name, _, port = host_header.rpartition(":") if not host_header.endswith("]") else (
                host_header, "", "")
            if not name or not port.isdigit():
                name, port = host_header, str(default_port)
            target = self._by_authority.get(f"{name.lower()}:{port}")
            if target is None:  # the host's name pointed at the gateway's own port
                same = [t for a, t in self._by_authority.items()
                        if a.rpartition(":")[0] == name.lower()]
                target = same[0] if len(same) == 1 else None
            if target is not None:
                return target
            label = name.split(".", 1)[0].lower()
            target = self._by_label.get(label)
            if target is not None and "." in name:
                return target
        if len(self._hosts) == 1:
            return next(iter(self._hosts.values()))
        if not self._hosts:
            return ("no overlay is applied in this gateway yet: create one with "
                    "cp.overlays.create(name, host=URL, ...)")
        names = ", ".join(f"{n}.localhost" for n in self.overlays)
        return (f"this gateway serves {len(self._hosts)} host applications; choose one by "
                f"the Host name: one of {names} (with this gateway's port), or the host's own "
                "name pointed at the gateway")
