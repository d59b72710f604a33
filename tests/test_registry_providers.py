"""Provider models, container images and declared resources in the registry
(overlay_sdk.registry_providers, registry_images, registry_resources).

The pure validation tests need no MLflow; the registry tests share one SQLite registry for
the module. The acceptance test searches every stored byte and every log line for a fake
API key.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Any

import pytest

from overlay_sdk.client import connect
from overlay_sdk.errors import ValidationError
from overlay_sdk.registry import ModelRegistry, content_sha256
from overlay_sdk.registry_images import ImageConfig, image_config
from overlay_sdk.registry_providers import ProviderConfig, looks_like_secret, provider_config
from overlay_sdk.registry_resources import Resources, check_resources

OPENAI = {"provider": "openai", "params": {"model": "gpt-4o-mini"}, "api_key_env": "OPENAI_API_KEY"}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, workdir: Path) -> ModelRegistry:
    return ModelRegistry.for_home(tmp_path_factory.mktemp("providers-home"))


# -- secrets (pure) -------------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    "sk-proj-abc123DEF456ghi789", "sk-ant-api03-xyz", "ghp_abcdefghijklmnop",
    "AKIAIOSFODNN7EXAMPLE",
    "Bearer abcdefghijklmnop12", "Xy7Kq2Lm9Np4Rs6Tu8Vw1Za3Bc5De7Fg0Hj2Kl4M",
    "0123456789abcdef0123456789abcdef", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.x",
])
def test_key_like_values_are_secrets(value: str) -> None:
    assert looks_like_secret(value)


@pytest.mark.parametrize("value", [
    "OPENAI_API_KEY", "gpt-4o-mini-2024-07-18", "claude-3-5-sonnet-20241022", "llama3.2:3b",
    "accounts/fireworks/models/llama-v3p1-70b-instruct", "Basic answers only, please.",
    "You are a helpful assistant that answers in one sentence.", "command-r-plus",
])
def test_names_and_settings_are_not_secrets(value: str) -> None:
    assert not looks_like_secret(value)


@pytest.mark.parametrize(("kwargs", "path", "hint"), [
    ({**OPENAI, "api_key_env": "sk-abc123def456ghi789jkl012mno345"}, "api_key_env",
     "looks like the key itself 'sk-\\*\\*\\*' \\(33 characters\\)"),
    ({**OPENAI, "api_key_env": "AKIAIOSFODNN7EXAMPLE"}, "api_key_env", "pass its NAME"),
    ({**OPENAI, "api_key_env": "openai key"}, "api_key_env", "is not an environment variable"),
    ({**OPENAI, "params": {"model": "gpt-4o", "api_key": "anything"}}, "params.api_key",
     "names a secret"),
    ({**OPENAI, "params": {"model": "gpt-4o", "headers": {"Authorization": "x"}}},
     "params.headers.Authorization", "names a secret"),
    ({**OPENAI, "params": {"model": "gpt-4o", "stop": ["sk-live-0123456789"]}},
     "params.stop[0]", "looks like an API key"),
])
def test_secrets_passed_by_mistake_are_refused_and_masked(kwargs: dict[str, Any], path: str,
                                                          hint: str) -> None:
    with pytest.raises(ValidationError, match=hint) as info:
        provider_config(**kwargs)
    assert info.value.paths == [path]
    for value in (kwargs["api_key_env"], "anything", "sk-live-0123456789"):
        if len(value) > 8 and value != "OPENAI_API_KEY":
            assert value not in str(info.value)


PW = "hunter2pass"


@pytest.mark.parametrize(("params", "path"), [
    ({"base_url": f"https://user:{PW}@proxy.example.com/v1"}, "params.base_url"),
    ({"endpoint": f"https://api.example.com/v1?key={PW}"}, "params.endpoint"),
    ({"endpoint": f"https://api.example.com/v1?x=1&api_key={PW}"}, "params.endpoint"),
    ({"hooks": [f"https://hooks.example.com/h?token={PW}"]}, "params.hooks[0]"),
    ({"repo": "https://ghp_abcdefghijklmnopqrstuvwxyz0123@github.com/a/b"}, "params.repo"),
])
def test_urls_with_credentials_in_params_are_refused_and_masked(
        params: dict[str, Any], path: str) -> None:
    with pytest.raises(ValidationError, match="URL with credentials") as info:
        provider_config("openai", {"model": "gpt-4o", **params}, "OPENAI_API_KEY")
    assert info.value.paths == [path]
    assert PW not in str(info.value) and "ghp_abc" not in str(info.value)


def test_urls_without_credentials_in_params_are_accepted() -> None:
    params = {"model": "llama3.2", "base_url": "http://user@localhost:11434/v1",
              "endpoint": "https://h.example.com/openai?api-version=2024-02-01&max_tokens=5"}
    assert provider_config("ollama", params, None).params == params


@pytest.mark.parametrize(("params", "path"), [
    ({"sk-proj-abc123DEF456ghi789": 1}, "params"),
    ({"headers": {"Xy7Kq2Lm9Np4Rs6Tu8Vw1Za3Bc5De7Fg0Hj2Kl4M": "x"}}, "params.headers"),
    ({"routes": [{"Bearer abcdefghijklmnop12": None}]}, "params.routes[0]"),
])
def test_keys_that_look_like_secrets_are_refused_and_never_echoed(
        params: dict[str, Any], path: str) -> None:
    with pytest.raises(ValidationError, match="has a key that looks like an API key") as info:
        provider_config("openai", {"model": "gpt-4o", **params}, "OPENAI_API_KEY")
    assert info.value.paths == [path]
    for secret in ("abc123DEF456ghi789", "Xy7Kq2Lm9Np4", "abcdefghijklmnop12"):
        assert secret not in str(info.value)


@pytest.mark.parametrize(("kwargs", "path", "hint"), [
    ({**OPENAI, "provider": "azure"}, "provider", "use one of anthropic, cohere, ollama, openai"),
    ({**OPENAI, "api_key_env": None}, "api_key_env", "api_key_env='OPENAI_API_KEY'"),
    ({**OPENAI, "api_key_env": 3}, "api_key_env", "got a int"),
    ({**OPENAI, "params": ["gpt-4o"]}, "params", "must be a dict"),
    ({**OPENAI, "params": {"temperature": 0.1}}, "params.model", "name the openai model"),
    ({**OPENAI, "params": {"model": "m", "x": {1, 2}}}, "params.x", "a set is not JSON"),
    ({**OPENAI, "params": {"model": "m", "t": float("nan")}}, "params.t", "finite number"),
    ({**OPENAI, "params": {"model": "m", 1: "a"}}, "params", "keys must be strings"),
    ({**OPENAI, "params": {"model": "m", "system": "word " * 20000}}, "params", "more than 65536"),
])
def test_bad_provider_arguments_name_the_argument(kwargs: dict[str, Any], path: str,
                                                  hint: str) -> None:
    with pytest.raises(ValidationError, match=hint) as info:
        provider_config(**kwargs)
    assert info.value.paths == [path]


def test_provider_settings_that_merely_mention_tokens_are_accepted() -> None:
    config = provider_config("openai", {"model": "gpt-4o", "max_tokens": 200,
                                        "stop_token": "</s>", "temperature": 0.0}, "OPENAI_API_KEY")
    assert config.source == "openai:gpt-4o" and config.params["max_tokens"] == 200
    assert provider_config("ollama", {"model": "llama3.2"}, None).api_key_env is None


def test_provider_config_round_trips_through_canonical_json() -> None:
    config = provider_config("anthropic", {"temperature": 0.3, "model": "claude-3-5-haiku"},
                             "ANTHROPIC_API_KEY")
    assert ProviderConfig.from_json(config.to_json()) == config
    again = provider_config("anthropic", {"model": "claude-3-5-haiku", "temperature": 0.3},
                            "ANTHROPIC_API_KEY")
    assert again.to_json() == config.to_json(), "key order does not matter"


# -- images and resources (pure) ------------------------------------------------------------


@pytest.mark.parametrize("ref", [
    "ghcr.io/acme/scorer:1.4", "scorer", "localhost:5000/team/scorer:latest", "nginx:1.27-alpine",
    "ghcr.io/acme/scorer@sha256:" + "a" * 64, "ghcr.io/acme/scorer:1.4@sha256:" + "0" * 64,
    "registry.example.com:443/a/b/c_d__e:v1.2.3",
])
def test_valid_image_references(ref: str) -> None:
    config = image_config(ref, 8080, "/healthz")
    assert config.pinned == ("@sha256:" in ref)
    assert ImageConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize(("args", "path"), [
    (("ghcr.io/Acme/scorer:1.4", 8080, None), "image"),
    (("ghcr.io/acme/scorer:", 8080, None), "image"),
    (("ghcr.io/acme/scorer@sha256:abc", 8080, None), "image"),
    (("https://ghcr.io/acme/scorer", 8080, None), "image"),
    ((None, 8080, None), "image"),
    (("scorer", 0, None), "port"),
    (("scorer", 65536, None), "port"),
    (("scorer", "8080", None), "port"),
    (("scorer", True, None), "port"),
    (("scorer", 8080, "healthz"), "health_path"),
    (("scorer", 8080, "/health z"), "health_path"),
])
def test_bad_image_arguments_name_the_argument(args: tuple[Any, Any, Any], path: str) -> None:
    with pytest.raises(ValidationError) as info:
        image_config(*args)
    assert info.value.paths == [path]


def test_resources_are_checked_and_canonical() -> None:
    assert check_resources(None) is None
    assert check_resources({"cpu": "500m", "memory": "4Gi"}) == Resources(cpu=0.5, memory="4Gi")
    assert check_resources({"cpu": 2.0}) == Resources(cpu=2)
    gpu = check_resources({"gpu": "A100-80GB", "fraction": 0.25})
    assert gpu is not None and gpu.as_dict() == {"fraction": 0.25, "gpu": "A100-80GB"}
    assert Resources.from_json(gpu.to_json()) == gpu


@pytest.mark.parametrize(("value", "path"), [
    ({}, "resources"), ([("cpu", 1)], "resources"), ({"disk": "1Gi"}, "resources"),
    ({"cpu": 0}, "resources.cpu"), ({"cpu": -1}, "resources.cpu"),
    ({"cpu": "lots"}, "resources.cpu"),
    ({"cpu": True}, "resources.cpu"), ({"memory": "4GB"}, "resources.memory"),
    ({"memory": 4}, "resources.memory"), ({"memory": "0Gi"}, "resources.memory"),
    ({"gpu": "A100", "fraction": 0}, "resources.fraction"),
    ({"gpu": "A100", "fraction": 1.5}, "resources.fraction"),
    ({"fraction": 0.5}, "resources.fraction"), ({"gpu": 2, "fraction": 0.5}, "resources.fraction"),
    ({"gpu": "A 100"}, "resources.gpu"), ({"gpu": 0}, "resources.gpu"),
])
def test_bad_resources_name_the_key(value: Any, path: str) -> None:
    with pytest.raises(ValidationError) as info:
        check_resources(value)
    assert info.value.paths == [path]


# -- in the registry ------------------------------------------------------------------------


def test_provider_model_is_an_immutable_version_identified_by_its_config(
    registry: ModelRegistry,
) -> None:
    v = registry.register("copilot", label="mini", **OPENAI)
    assert (v.version, v.flavor, v.source, v.label, v.features) == (
        "1", "provider", "openai:gpt-4o-mini", "mini", ())
    same = registry.register("copilot", provider="openai", api_key_env="OPENAI_API_KEY",
                             params={"model": "gpt-4o-mini"}, label="other")
    assert same == v, "the same configuration is the same version"
    assert content_sha256(**OPENAI) == v.sha256
    warmer = registry.register("copilot", **{**OPENAI, "params": {"model": "gpt-4o-mini",
                                                                "temperature": 0.9}})
    other_env = registry.register("copilot", **{**OPENAI, "api_key_env": "TEAM_OPENAI_KEY"})
    assert [warmer.version, other_env.version] == ["2", "3"]
    assert registry.config("copilot", 2) == ProviderConfig(
        "openai", {"model": "gpt-4o-mini", "temperature": 0.9}, "OPENAI_API_KEY")
    assert registry.resolve("copilot:1").sha256 == v.sha256
    assert registry.verify("copilot", 1).ok and registry.verify("copilot", 2).ok


def test_loading_a_provider_model_points_to_the_gateway_and_config(
    registry: ModelRegistry,
) -> None:
    v = registry.register("keyless", provider="ollama", params={"model": "llama3.2"},
                          resources={"gpu": "RTX-4090", "fraction": 0.5})
    assert v.source == "ollama:llama3.2" and v.resources == Resources(gpu="RTX-4090",
                                                                        fraction=0.5)
    with pytest.raises(ValidationError, match=r"keyless:1 is a provider model \(ollama:llama3.2\)"
                                              r".*gateway.*config\('keyless', '1'\)") as info:
        registry.load("keyless", 1)
    assert info.value.paths == ["version"]
    registry.register("an-object", lambda df: df)
    with pytest.raises(ValidationError, match=r"not a provider or image; load it"):
        registry.config("an-object", 1)


def test_image_model_registers_verifies_and_keeps_its_config(registry: ModelRegistry) -> None:
    v = registry.register("scorer", image="ghcr.io/acme/scorer:1.4", port=8080,
                          health_path="/healthz", label="1.4")
    assert (v.flavor, v.source, v.resources) == ("image", "ghcr.io/acme/scorer:1.4", None)
    assert registry.register("scorer", image="ghcr.io/acme/scorer:1.4", port=8080,
                             health_path="/healthz") == v
    pinned = registry.register("scorer", image="ghcr.io/acme/scorer:1.4@sha256:" + "b" * 64,
                               port=8080, health_path="/healthz")
    other_port = registry.register("scorer", image="ghcr.io/acme/scorer:1.4", port=9000,
                                   health_path="/healthz")
    assert [pinned.version, other_port.version] == ["2", "3"]
    config = registry.config("scorer", 2)
    assert isinstance(config, ImageConfig) and config.digest == "sha256:" + "b" * 64
    assert registry.verify("scorer", 2).ok
    with pytest.raises(ValidationError, match="is an image model"):
        registry.load("scorer", 1)


def test_resources_are_part_of_the_identity_and_shown_in_versions(
    registry: ModelRegistry,
) -> None:
    image = {"image": "ghcr.io/acme/ranker:2", "health_path": "/ready"}
    bare = registry.register("ranker", **image)
    small = registry.register("ranker", **image, resources={"cpu": 2, "memory": "4Gi"})
    gpu = registry.register("ranker", **image, resources={"gpu": "A100-80GB", "fraction": 0.25})
    again = registry.register("ranker", **image, resources={"memory": "4Gi", "cpu": "2"})
    assert [bare.version, small.version, gpu.version, again.version] == ["1", "2", "3", "2"]
    assert small.resources == Resources(cpu=2, memory="4Gi")
    frame = registry.versions("ranker")
    assert frame["resources"].tolist() == [None, {"cpu": 2, "memory": "4Gi"},
                                           {"fraction": 0.25, "gpu": "A100-80GB"}]
    assert all(registry.verify("ranker", n).ok for n in (1, 2, 3))


def test_an_edited_resources_tag_fails_verification(registry: ModelRegistry) -> None:
    from mlflow import MlflowClient

    v = registry.register("edited", image="ghcr.io/acme/edited:1", resources={"cpu": 1})
    client = MlflowClient(registry.tracking_uri, registry.registry_uri)
    client.set_model_version_tag("edited", v.version, "overlay.resources", '{"cpu":8}')
    result = registry.verify("edited", v.version)
    assert not result.ok and result.changed == ("tag overlay.resources",)


@pytest.mark.parametrize(("kwargs", "path", "hint"), [
    ({}, "model", "give exactly one of model"),
    ({"model": len, "image": "scorer"}, "image", "got model, image"),
    ({"params": {"model": "x"}, "image": "scorer"}, "params", "for provider models"),
    ({"api_key_env": "sk-abcdefghijklmnop", "image": "s"}, "api_key_env", "provider="),
    ({**OPENAI, "port": 80}, "port", "container-image models"),
    ({**OPENAI, "flavor": "pyfunc"}, "flavor", "a provider model has no flavor"),
    ({"image": "scorer", "reference": "x"}, "reference", "an image model has no reference"),
    ({**OPENAI, "resources": {"cpu": 1}}, "resources", "run on openai's servers"),
    ({"image": "scorer", "resources": {"cpu": 0}}, "resources.cpu", "number of cores"),
])
def test_arguments_that_do_not_belong_are_refused(
    registry: ModelRegistry, kwargs: dict[str, Any], path: str, hint: str,
) -> None:
    with pytest.raises(ValidationError, match=hint) as info:
        registry.register("misfit", **kwargs)
    assert info.value.paths == [path]
    assert "sk-abcdefghijklmnop" not in str(info.value)
    assert "misfit" not in registry


# -- acceptance: a secret never reaches a store or a log -------------------------------------


def test_a_secret_value_never_appears_in_the_mlflow_store_the_overlay_store_or_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = "sk-test-" + secrets.token_urlsafe(32)
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    caplog.set_level(logging.DEBUG)  # the root logger: every logger propagates here
    home = tmp_path / "home"
    with connect(home) as cp:
        v = cp.models.register("copilot", provider="openai", params={"model": "gpt-4o-mini"},
                               api_key_env="OPENAI_API_KEY")
        for mistake in ({"api_key_env": secret},
                        {"api_key_env": "OPENAI_API_KEY",
                         "params": {"model": "gpt-4o-mini", "api_key": secret}},
                        {"api_key_env": "OPENAI_API_KEY",
                         "params": {"model": "gpt-4o-mini", "note": secret}}):
            with pytest.raises(ValidationError) as info:
                cp.models.register("copilot", provider="openai",
                                   **{"params": {"model": "gpt-4o-mini"}, **mistake})
            assert secret not in str(info.value) and secret[:12] not in str(info.value)
            logging.getLogger("test").error("refused: %s", info.value)
        assert cp.models.versions("copilot")["version"].tolist() == ["1"]
        assert cp.models.verify("copilot", 1).ok
        overlay = cp.overlays.create("sales-copilot", host="http://127.0.0.1:8001",
                                     routes={"copilot:1": 100})
        assert overlay.spec.routes[0].version == v.version
        cp.models.config("copilot", 1)
    files = [p for p in home.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"mlflow.db", "overlays.db", "provider.json", "manifest.json"} <= names, names
    needle = secret.encode()
    leaks = [str(p) for p in files if needle in p.read_bytes()]
    assert leaks == [], f"the secret was stored in {leaks}"
    assert b"OPENAI_API_KEY" in (home / "mlartifacts").joinpath(
        *next((home / "mlartifacts").rglob("provider.json")).relative_to(
            home / "mlartifacts").parts).read_bytes(), "the variable NAME is what is stored"
    out = capsys.readouterr()
    logged = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert caplog.records, "logs were captured"
    for text in (logged, out.out, out.err):
        assert secret not in text


FREE_TEXT_SECRETS = [
    "sk-proj-abc123DEF456ghi789", f"mirror of https://ana:{PW}@git.example.com/m",
    f"see https://s.example.com/m?token={PW}", "key: Xy7Kq2Lm9Np4Rs6Tu8Vw1Za3Bc5De7Fg0Hj2Kl4M.",
]


@pytest.mark.parametrize("field", ["label", "description"])
@pytest.mark.parametrize("kind", [
    {"model": None}, {**OPENAI}, {"image": "ghcr.io/acme/scorer:1.4"},
], ids=["model", "provider", "image"])
def test_labels_and_descriptions_holding_secrets_are_refused_for_every_kind(
        registry: ModelRegistry, field: str, kind: dict[str, Any]) -> None:
    if "model" in kind:
        from tests.conftest import _fit

        kind = {"model": _fit(0.3)}
    for text in FREE_TEXT_SECRETS:
        kwargs: dict[str, Any] = {**kind, field: text}
        with pytest.raises(ValidationError, match="looks like it holds a secret") as info:
            registry.register("free-text", **kwargs)
        assert info.value.paths == [field]
        for part in ("abc123DEF456", PW, "Xy7Kq2Lm9Np4"):
            assert part not in str(info.value)
    assert "free-text" not in registry, "nothing was stored"


def test_ordinary_labels_and_descriptions_are_accepted(registry: ModelRegistry) -> None:
    mv = registry.register("prose", image="ghcr.io/acme/prose:1", label="v1.0.4-alpha",
                           description="Trained with sk-learn on 2024 data; see "
                                       "https://wiki.example.com/m?page=2 for the token limits.")
    assert mv.label == "v1.0.4-alpha"


@pytest.mark.parametrize("text", [
    "api_key=s3cr3tVALUE99", "password: s3cr3tVALUE99", "see token=s3cr3tVALUE99 here",
    "https://proxy/v1#token=s3cr3tVALUE99", "https://s3cr3tVALUE99@proxy/v1",
])
def test_secrets_in_free_text_are_refused_without_echo(text: str) -> None:
    from overlay_sdk.registry_providers import check_free_text

    with pytest.raises(ValidationError) as info:
        check_free_text(text, "label")
    assert "s3cr3tVALUE99" not in str(info.value)


@pytest.mark.parametrize("text", ["v1.0.4-alpha", "max_tokens=200", "tokenizer: bpe",
                                  "http://user@localhost:11434/v1", "stop_token=###"])
def test_ordinary_free_text_is_accepted(text: str) -> None:
    from overlay_sdk.registry_providers import check_free_text

    check_free_text(text, "label")
