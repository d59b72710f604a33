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
secret (``api_key``, ``access_token``, ``password``...: :func:`secret_key`), and any
``params`` string or key that :func:`contains_secret`: it looks like a key (prefixes such as
``sk-``, ``sk-ant-``, ``ghp_``, ``AKIA``, ``Bearer ``; or a long random-looking token), has
such a word, or holds a URL with credentials (``https://user:pw@host``, ``?key=...``,
``?token=...``, a token as the user name). ``register`` refuses a ``label`` or
``description`` that :func:`contains_secret` the same way, for every kind of model
(:func:`check_free_text`). Error messages show such values masked (:func:`mask`), and a
secret-looking key is never echoed in the field path.

Pure: no MLflow, no environment reads beyond whether the variable is set.
"""

from __future__ import annotations

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
from overlay_sdk.registry_redact import has_credentials, secret_key, url_users

__all__ = [
    "ENV_NAME",
    "HOSTED_PROVIDERS",
    "MAX_PARAMS_BYTES",
    "PROVIDERS",
    "PROVIDER_FILE",
    "ProviderConfig",
    "check_free_text",
    "contains_secret",
    "looks_like_secret",
    "mask",
    "provider_config",
    "secret_key",
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


# ``api_key=...``, ``token: ...``, ``#access_token=...``: a secret-named word given a value
_ASSIGNED_SECRET = re.compile(
    r"(?i)(?:^|[\s?&#;,(\[{'\"])[\w.-]*(?:api[_-]?key|apikey|token|secret|passw(?:or)?d|pwd|"
    r"authorization|credential|private[_-]?key|signature|sig)\s*[=:]\s*[^\s&#'\"]+"
)


_PLAIN_USER = re.compile(r"^[a-z][a-z._-]{0,31}$")


def contains_secret(text: str) -> bool:
    """Whether free text (a label, a description, a ``params`` string or key) carries a
    secret: it :func:`looks_like_secret` as a whole, or one of its words of 16+ characters
    does, or a URL in it has a password, a secret query parameter (``?key=``, ``?token=``:
    :func:`~overlay_sdk.registry_redact.redact`) or a key-like user name."""
    if looks_like_secret(text) or has_credentials(text) or _ASSIGNED_SECRET.search(text):
        return True
    # a URL's user name: a plain account name passes, anything token-like (digits, mixed
    # case, long) does not
    if any(not _PLAIN_USER.match(user) for user in url_users(text)):
        return True
    return any(len(word) >= 16 and looks_like_secret(word)
               for word in re.split(r"[\s'\"`(),;<>\[\]{}]+", text))


def check_free_text(value: str | None, field: str) -> None:
    """ValidationError at ``field`` (the value masked) when a label or description
    :func:`contains_secret`: they are stored in plain sight, as MLflow tags and
    descriptions."""
    if value is not None and contains_secret(value):
        raise ValidationError.at(field, f"looks like it holds a secret (an API key, token or a "
                                 f"URL with credentials) {mask(value)}; labels and descriptions"
                                 " are stored in plain sight: remove it (nothing was stored)")


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
            if contains_secret(key):  # never echo it: the path stops above it
                raise _refuse(path, f"has a key that looks like an API key or token {mask(key)}")
            if secret_key(key) and item is not None:
                raise _refuse(f"{path}.{key}", "names a secret (an API key, token or password)")
            out[key] = _check_params(item, f"{path}.{key}", depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_check_params(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(value, str):
        if has_credentials(value) or any(looks_like_secret(u) for u in url_users(value)):
            raise _refuse(path, f"holds a URL with credentials (a password, a token as the user"
                          f" name or a secret query parameter such as ?key=) {mask(value)}")
        if contains_secret(value):
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
