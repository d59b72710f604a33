"""Credentials never reach a registry message (overlay_sdk.registry_redact and its users).

The pure tests pin what :func:`redact` masks; the others make the registry fail against an
unreachable tracking server whose URI carries a password (MLflow's error repeats the URL),
and pass URLs with credentials where a model URI or a UI address belongs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from overlay_sdk.errors import BackendError, OverlayError, ValidationError
from overlay_sdk.registry import UI_ENV, ModelRegistry
from overlay_sdk.registry_backend import safe_uri
from overlay_sdk.registry_redact import has_credentials, redact, url_users

SECRET = "s3cr3tpass"


@pytest.mark.parametrize(("text", "expected"), [
    ("http://user:s3cr3tpass@127.0.0.1:9/api", "http://user:***@127.0.0.1:9/api"),
    ("API request to https://u:p%40ss@h:443/x failed",
     "API request to https://u:***@h:443/x failed"),
    ("postgresql+psycopg2://ana:pw@db/mlflow", "postgresql+psycopg2://ana:***@db/mlflow"),
    ("url='http://u:a@b@host/'", "url='http://u:***@host/'"),  # a raw '@': up to the last
    ("http://:tok@host", "http://:***@host"),
    ("two: http://a:x@h1/ and s3://b:y@bucket/k", "two: http://a:***@h1/ and s3://b:***@bucket/k"),
    ("https://h/a?token=abc&x=1", "https://h/a?token=***&x=1"),
    ("https://h/?X=1&API-KEY=abc;Sig=zz#frag", "https://h/?X=1&API-KEY=***;Sig=***#frag"),
    ("?key=k&apikey=a&access_token=t&secret=s&password=p&signature=g&client_secret=c",
     "?key=***&apikey=***&access_token=***&secret=***&password=***&signature=***"
     "&client_secret=***"),
    ("https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA&X-Amz-Signature=ab12",
     "https://b.s3.amazonaws.com/k?X-Amz-Credential=***&X-Amz-Signature=***"),
])
def test_redact_masks_url_passwords_and_secret_query_values(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert redact(expected) == expected, "idempotent"
    assert has_credentials(text) and not has_credentials(expected)


@pytest.mark.parametrize("text", [
    "http://127.0.0.1:5000/api?max_results=1000&filter=x", "sqlite:////tmp/mlflow.db",
    "http://user@host/", "http://host:8080/path", "key_prefix=a and max_tokens=5",
    "https://h/?monkey=banana&keyboard=1", "http://u:@host/",
])
def test_redact_leaves_everything_else_alone(text: str) -> None:
    assert redact(text) == text and not has_credentials(text)


def test_url_users_and_safe_uri() -> None:
    assert url_users("a https://ghp_x@github.com/r and http://u:p@h/") == ["ghp_x", "u"]
    assert safe_uri("http://me:pw@h:5000/?token=t") == "http://me:***@h:5000/?token=***"


def _texts(err: BaseException) -> list[str]:
    """``str`` of the error and of every exception a traceback would show with it."""
    found: list[str] = []
    seen: BaseException | None = err
    while seen is not None:
        found.append(str(seen))
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return found


def test_a_backend_error_never_shows_the_tracking_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # port 9 refuses at once
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    monkeypatch.delenv(UI_ENV, raising=False)
    reg = ModelRegistry(f"http://user:{SECRET}@127.0.0.1:9/", lock_dir=tmp_path)
    for call in (reg.list, lambda: reg.versions("fraud"), lambda: "fraud" in reg):
        with pytest.raises(BackendError) as info:
            call()
        texts = _texts(info.value)
        assert all(SECRET not in text for text in texts), texts
        assert "http://user:***@127.0.0.1:9/" in texts[0]
        assert "MLflow failed while" in texts[0]
    assert SECRET not in repr(reg)


@pytest.mark.parametrize("model", [
    f"https://user:{SECRET}@models.example.com/fraud", f"gs://bucket/m?token={SECRET}",
])
def test_a_model_uri_with_credentials_is_not_echoed(tmp_path: Path, model: str) -> None:
    reg = ModelRegistry(f"sqlite:///{tmp_path}/mlflow.db")
    with pytest.raises(OverlayError) as info:
        reg.register("fraud", model)
    assert isinstance(info.value, ValidationError) and info.value.paths == ["model"]
    assert all(SECRET not in text for text in _texts(info.value))
