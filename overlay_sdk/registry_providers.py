"""Provider models: a hosted or local LLM API registered by its configuration, never a key.

``register("copilot", provider="openai", params={"model": "gpt-4o-mini"},
api_key_env="OPENAI_API_KEY")`` calls :func:`provider_config`, which checks the arguments
and returns a :class:`ProviderConfig`; :mod:`overlay_sdk.registry_identity` stores its
canonical JSON as the version's only model file (``model/provider.json``), so the version
is immutable and SHA-256-identified like any other (the same configuration is the same
version) and ``verify`` recomputes it from that file.

Secrets: the version stores the *name* of the environment variable that holds the API key
(``api_key_env``), never its value, and registration does not read the value. What looks
like a secret where a name or a setting belongs is refused (:func:`looks_like_secret`):
an ``api_key_env`` that is not a variable name, a ``params`` entry whose key names a
secret (``api_key``, ``access_token``, ``password``...) and any ``params`` string that looks
like a key (prefixes such as ``sk-``, ``sk-ant-``, ``ghp_``, ``AKIA``, ``Bearer ``; or a
long random-looking token). Error messages show such values masked (:func:`mask`).

Pure: no MLflow, no environment reads beyond whether the variable is set.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from overlay_sdk import hashing
from overlay_sdk.errors import ValidationError

__all__ = [
    "ENV_NAME",
    "HOSTED_PROVIDERS",
    "MAX_PARAMS_BYTES",
    "PROVIDERS",
    "PROVIDER_FILE",
    "ProviderConfig",
    "looks_like_secret",
    "mask",
    "provider_config",
]

PROVIDERS = ("anthropic", "cohere", "ollama", "openai")
HOSTED_PROVIDERS = frozenset({"anthropic", "cohere", "openai"})
"""Providers reached over the internet with an API key (ollama runs locally, keyless)."""
PROVIDER_FILE = "provider.json"
ENV_NAME = r"^[A-Z_][A-Z0-9_]*$"
MAX_PARAMS_BYTES = 64 * 1024
_MAX_DEPTH = 8
_MAX_ENV = 128
_log = logging.getLogger(__name__)

_SECRET_PREFIXES = ("sk-", "sk_", "pk_live_", "rk_live_", "ghp_", "gho_", "ghs_", "ghu_",
                    "github_pat_", "glpat-", "xoxb-", "xoxp-", "xapp-", "hf_", "AIza")
_CLOUD_KEY_ID = re.compile(r"^(AKIA|ASIA)[A-Z0-9]{16}$")
_JWT = re.compile(r"^eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.")
_AUTH_HEADER = re.compile(r"^(?i:bearer|basic|token) +[A-Za-z0-9+/=._~-]{12,}$")
_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9+/=_.-]+$")
_SECRET_WORDS = frozenset({"apikey", "authorization", "credential", "credentials", "passphrase",
                           "passwd", "password", "secret"})
_KEY_PAIRS = frozenset({("api", "key"), ("access", "key"), ("private", "key"),
                        ("secret", "key"), ("client", "secret")})
_TOKEN_OWNERS = frozenset({"access", "api", "auth", "bearer", "id", "refresh", "session"})


@dataclass(frozen=True)
class ProviderConfig:
    """A provider model's stored configuration (no secret). ``params`` are the provider's
    request settings (``model``, ``temperature``...); ``api_key_env`` names the variable the
    gateway reads the key from where it runs (None: keyless ollama)."""

    provider: str
    params: Mapping[str, Any] = field(default_factory=dict)
    api_key_env: str | None = None

    @property
    def source(self) -> str:
        """``provider:model``, e.g. ``openai:gpt-4o-mini``."""
        return f"{self.provider}:{self.params.get('model', '')}"

    def to_json(self) -> bytes:
        """The canonical JSON stored as ``model/provider.json`` (what the identity hashes)."""
        return hashing.canonical_json({"api_key_env": self.api_key_env, "kind": "provider",
                                       "params": dict(self.params), "provider": self.provider})

    @classmethod
    def from_json(cls, data: bytes) -> ProviderConfig:
        """The configuration stored by :meth:`to_json`."""
        import json

        doc = json.loads(data)
        return cls(doc["provider"], doc.get("params") or {}, doc.get("api_key_env"))


def mask(value: str) -> str:
    """A secret-safe rendering for messages: a known short prefix at most, and the length."""
    shown = next((p for p in ("sk-ant-", *_SECRET_PREFIXES) if value.startswith(p)), "")
    return f"'{shown}***' ({len(value)} characters)"


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def looks_like_secret(value: str) -> bool:
    """Whether a string looks like an API key or token rather than a name or a setting:
    a known key prefix, a cloud key id, a JWT, an ``Authorization`` header value, or a
    long random-looking token (32+ token characters mixing upper case, lower case and
    digits, or 32+ hex digits)."""
    text = value.strip()
    if text.startswith(_SECRET_PREFIXES) or any(
            p.match(text) for p in (_CLOUD_KEY_ID, _JWT, _AUTH_HEADER)):
        return True
    if len(text) < 32 or not _TOKEN_CHARS.match(text):
        return False
    if re.fullmatch(r"[0-9a-fA-F]+", text):
        return _entropy(text) >= 3.0
    mixed = (any(c.isupper() for c in text) and any(c.islower() for c in text)
             and any(c.isdigit() for c in text))
    return mixed and _entropy(text) >= 4.0


def _secret_key(key: str) -> bool:
    """Whether a ``params`` key names a secret (``api_key``, ``x-api-key``, ``accessToken``,
    ``password``), but not a setting such as ``max_tokens`` or ``key_prefix``."""
    words = [w.lower() for w in re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", key)]
    if not words:
        return False
    if _SECRET_WORDS & set(words) or _KEY_PAIRS & set(itertools.pairwise(words)):
        return True
    if words == ["key"] or words == ["token"]:
        return True
    return words[-1] == "token" and len(words) > 1 and words[-2] in _TOKEN_OWNERS


def _refuse(path: str, what: str) -> ValidationError:
    return ValidationError.at(path, f"{what}; secrets are never stored with a model: put the key "
                              "in an environment variable and pass its NAME as api_key_env, "
                              "e.g. api_key_env='OPENAI_API_KEY' (nothing was stored)")


def _check_params(value: Any, path: str, depth: int = 0) -> Any:
    """A JSON copy of ``value`` (str keys, finite numbers), refusing secrets on the way."""
    if depth > _MAX_DEPTH:
        raise ValidationError.at(path, f"is nested more than {_MAX_DEPTH} levels deep; "
                                 "flatten the settings")
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError.at(path, f"keys must be strings, got {type(key).__name__}"
                                         f" {key!r:.40}; write the key as a string")
            if _secret_key(key) and item is not None:
                raise _refuse(f"{path}.{key}", "names a secret (an API key, token or password)")
            out[key] = _check_params(item, f"{path}.{key}", depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_check_params(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(value, str):
        if looks_like_secret(value):
            raise _refuse(path, f"holds a value that looks like an API key or token {mask(value)}")
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError.at(path, f"{value} is not a JSON number; use a finite number")
    if value is None or isinstance(value, bool | int | float):
        return value
    raise ValidationError.at(path, f"a {type(value).__name__} is not JSON; use strings, numbers, "
                             "booleans, None, lists and dicts")


def _check_env(api_key_env: Any, provider: str) -> str | None:
    if api_key_env is None:
        if provider in HOSTED_PROVIDERS:
            raise ValidationError.at(
                "api_key_env", f"{provider} needs an API key: pass the NAME of the environment "
                f"variable that holds it, e.g. api_key_env='{provider.upper()}_API_KEY' (the key "
                "itself is read by the gateway where it runs, never stored)")
        return None
    if not isinstance(api_key_env, str):
        raise ValidationError.at("api_key_env", f"must be an environment variable name (a "
                                 f"string) such as 'OPENAI_API_KEY', got a "
                                 f"{type(api_key_env).__name__}")
    if looks_like_secret(api_key_env) or (
            not re.match(ENV_NAME, api_key_env) and len(api_key_env) >= 20):
        raise _refuse("api_key_env", f"got what looks like the key itself {mask(api_key_env)},"
                      " not a variable name")
    if not re.match(ENV_NAME, api_key_env) or len(api_key_env) > _MAX_ENV:
        raise ValidationError.at(
            "api_key_env", f"{mask(api_key_env)} is not an environment variable name; use up "
            f"to {_MAX_ENV} capital letters, digits and '_', not starting with a digit, "
            "e.g. 'OPENAI_API_KEY'")
    return api_key_env


def provider_config(provider: Any, params: Any, api_key_env: Any) -> ProviderConfig:
    """The checked configuration of a provider model; ValidationError naming the argument.

    ``params`` must name the provider's model (``params={"model": "gpt-4o-mini"}``) and be
    JSON of at most :data:`MAX_PARAMS_BYTES`. Logs (INFO) when the key variable is unset in
    this process; its value is never read."""
    if provider not in PROVIDERS:
        raise ValidationError.at("provider", f"unknown provider {provider!r:.40}; use one of "
                                 f"{', '.join(PROVIDERS)}")
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise ValidationError.at("params", f"must be a dict of the provider's settings, got a "
                                 f"{type(params).__name__}; e.g. params={{'model': "
                                 "'gpt-4o-mini', 'temperature': 0.2}")
    env = _check_env(api_key_env, provider)
    clean = _check_params(params, "params")
    model = clean.get("model")
    if not isinstance(model, str) or not model.strip() or len(model) > 200:
        raise ValidationError.at("params.model", f"name the {provider} model to call, e.g. "
                                 "params={'model': 'gpt-4o-mini'} (up to 200 characters)")
    size = len(hashing.canonical_json(clean))
    if size > MAX_PARAMS_BYTES:
        raise ValidationError.at("params", f"is {size} bytes as JSON, more than "
                                 f"{MAX_PARAMS_BYTES}; keep long prompts or data elsewhere")
    if env is not None and env not in os.environ:
        _log.info("environment variable %s is not set in this process; the gateway needs it "
                  "where it calls %s", env, provider)
    return ProviderConfig(provider, clean, env)
