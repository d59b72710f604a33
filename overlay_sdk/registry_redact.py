"""Credentials out of messages: :func:`redact` masks what a URL carries as a secret.

Registry messages quote tracking URIs, artifact locations, UI addresses and the text of
exceptions raised below us (MLflow's errors repeat the request URL, user-info and all).
Every such message goes through :func:`redact`, which masks, anywhere in a text:

- the password of a URL's user-info: ``scheme://user:pass@host`` -> ``scheme://user:***@host``
  (the user name stays, so the message still says who connected);
- the value of a query parameter whose name is a secret: ``token``, ``key``, ``api_key``,
  ``apikey``, ``access_token``, ``secret``, ``password``, ``sig``, ``signature`` (any case,
  ``-`` or ``_``), the AWS pre-signed ``X-Amz-Signature`` / ``X-Amz-Credential`` /
  ``X-Amz-Security-Token``, and any name :func:`secret_key` says names a secret
  (``client_secret``, ``auth_token``...): ``?token=abc`` -> ``?token=***``.

:func:`has_credentials` and :func:`url_users` let :mod:`overlay_sdk.registry_providers`
refuse such URLs before they are stored.

Pure and idempotent (``redact(redact(t)) == redact(t)``).
"""

from __future__ import annotations

import itertools
import re

__all__ = ["MASK", "SECRET_QUERY_NAMES", "has_credentials", "redact", "secret_key", "url_users"]

MASK = "***"
SECRET_QUERY_NAMES = frozenset({
    "token", "key", "api_key", "apikey", "access_token", "secret", "password", "sig",
    "signature", "x_amz_signature", "x_amz_credential", "x_amz_security_token",
})
"""Query parameter names (lower case, ``-`` read as ``_``) whose values are masked."""

_SECRET_WORDS = frozenset({"apikey", "authorization", "credential", "credentials", "passphrase",
                           "passwd", "password", "secret"})
_KEY_PAIRS = frozenset({("api", "key"), ("access", "key"), ("private", "key"),
                        ("secret", "key"), ("client", "secret")})
_TOKEN_OWNERS = frozenset({"access", "api", "auth", "bearer", "id", "refresh", "session"})

# scheme://user:password@ -- the password runs to the LAST '@' of the authority (as urlsplit
# reads it), and the authority ends at '/', '?', '#', whitespace or a quote.
_USERINFO = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:'\"<>]*:)(?P<password>[^\s/?#'\"<>]*)@")
_USER = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://(?P<user>[^\s/?#@:'\"<>]+)(?::[^\s/?#'\"<>]*)?@")
_QUERY = re.compile(r"(?P<head>[?&;](?P<name>[A-Za-z0-9_.-]+)=)(?P<value>[^&;#\s'\"<>]*)")


def secret_key(key: str) -> bool:
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


def _query(m: re.Match[str]) -> str:
    name = m["name"]
    if m["value"] and (name.lower().replace("-", "_") in SECRET_QUERY_NAMES
                       or secret_key(name)):
        return m["head"] + MASK
    return m[0]


def redact(text: str) -> str:
    """``text`` with URL passwords and secret query parameter values replaced by ``***``
    (see the module docstring); everything else unchanged."""
    text = _USERINFO.sub(lambda m: f"{m['head']}{MASK}@" if m["password"] else m[0], text)
    return _QUERY.sub(_query, text)


def has_credentials(text: str) -> bool:
    """Whether ``text`` holds what :func:`redact` masks (a URL password, a secret query
    parameter value)."""
    return redact(text) != text


def url_users(text: str) -> list[str]:
    """The user names of the URLs in ``text`` (``https://<user>[:pw]@host``), for callers
    checking whether one is a token (``https://ghp_...@github.com``)."""
    return [m["user"] for m in _USER.finditer(text)]
