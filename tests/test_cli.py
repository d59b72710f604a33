"""The `overlay` command: every command, its output formats, bad input and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from overlay_sdk.cli import cli

from .conftest import dump_sqlite

DOC = """\
apiVersion: overlays.aioverlay.dev/v1alpha1
kind: AIOverlay
metadata: {name: scoring}
spec:
  host: {url: "http://127.0.0.1:8001"}
  routes:
    - {model: fraud, version: "1", weight: 90}
    - {model: fraud, version: "2", weight: 10}
"""


def write(tmp_path: Path, text: str, name: str = "o.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_help_lists_commands_and_exit_codes() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("init", "apply", "get", "history", "rollback", "delete", "models"):
        assert command in result.output
    assert "Exit codes" in result.output
    sub = CliRunner().invoke(cli, ["models", "--help"]).output
    for command in ("list", "versions", "register", "rollback", "verify", "alias", "serving-at"):
        assert command in sub
    alias = CliRunner().invoke(cli, ["models", "alias", "--help"]).output
    assert all(c in alias for c in ("set", "delete", "history"))


def test_init_creates_the_home(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run("init")
    assert result.exit_code == 0, result.output
    assert "overlay home:" in result.output and "(0 overlays)" in result.output
    assert (tmp_path / "home" / "overlays.db").exists()


def test_apply_get_history_rollback_delete(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, DOC)
    result = run("apply", "-f", path, "-m", "first")
    assert result.exit_code == 0, result.output
    assert "aioverlay/scoring applied (revision 1)" in result.output

    result = run("apply", "-f", write(tmp_path, DOC.replace("90}", "95}").replace("10}", "5}")))
    assert "revision 2" in result.output and "fraud:1 90->95" in result.output

    table = run("get").output
    assert "scoring" in table and "fraud:1=95, fraud:2=5" in table
    as_yaml = yaml.safe_load(run("get", "scoring", "-o", "yaml").output)
    assert as_yaml["spec"]["routes"][0] == {"model": "fraud", "version": "1", "weight": 95}
    as_json = json.loads(run("get", "scoring", "-o", "json").stdout)
    assert as_json["metadata"]["name"] == "scoring"
    listing = json.loads(run("get", "-o", "json").stdout)
    assert [i["metadata"]["name"] for i in listing["items"]] == ["scoring"]
    assert yaml.safe_load(run("get", "-o", "yaml").output)["metadata"]["name"] == "scoring"

    rows = json.loads(run("history", "scoring", "-o", "json").stdout)
    assert [(r["revision"], r["message"], r["author"]) for r in rows] == [
        (1, "first", "ops"), (2, "apply", "ops")]
    assert "routes fraud:1 90->95" in run("history", "scoring").output

    result = run("rollback", "scoring")
    assert result.exit_code == 0 and "revision 3 (rollback to revision 1)" in result.output
    result = run("rollback", "scoring", "--to", "2")
    assert "revision 4 (rollback to revision 2)" in result.output

    assert run("delete", "scoring").output.strip() == "aioverlay/scoring deleted"
    assert run("get").output.strip() == "(none)"
    assert "delete" in run("history", "scoring").output  # history outlives the overlay


def test_apply_many_documents_is_all_or_nothing(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    second = DOC.replace("name: scoring", "name: other").replace("90}", "80}")
    result = run("apply", "-f", write(tmp_path, DOC + "---\n" + second))
    assert result.exit_code == 2
    assert "document 2" in result.stderr and "spec.routes: weights sum to 90" in result.stderr
    assert run("get").output.strip() == "(none)"
    second = second.replace("80}", "90}")
    result = run("apply", "-f", "-", stdin=DOC + "---\n" + second)
    assert result.exit_code == 0 and result.output.count("applied") == 2


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("get", "nope"), 3, "overlay 'nope' not found"),
        (("history", "nope"), 3, "'nope' has no history"),
        (("rollback", "nope"), 3, "'nope' not found"),
        (("delete", "nope"), 3, "does not exist"),
        (("models", "versions", "nosuch"), 3, "nosuch"),
        (("apply", "-f", "/no/such/file.yaml"), 2, "cannot read /no/such/file.yaml"),
        (("get", "-o", "xml"), 2, "Invalid value for '-o'"),
        (("rollback", "x", "--to", "abc"), 2, "is not a valid integer"),
        (("frobnicate",), 2, "No such command"),
    ],
)
def test_errors_go_to_stderr_with_exit_codes(  # type: ignore[no-untyped-def]
    run, args: tuple[str, ...], code: int, message: str
) -> None:
    result = run(*args)
    assert result.exit_code == code, (result.output, result.stderr)
    assert message in result.stderr
    assert result.stdout == ""


def test_bad_documents_name_the_field_and_store_nothing(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("apply", "-f", write(tmp_path, DOC))
    db = tmp_path / "home" / "overlays.db"
    before = dump_sqlite(db)
    cases = {
        "spec.routes[1]: model 'fraud' has no version 9": DOC.replace('"2"', '"9"'),
        "spec.mode": DOC.replace("routes:", "mode: turbo\n  routes:"),
        "not valid YAML": "spec: [unclosed",
        "holds no document": "",
        "metadata.name": DOC.replace("scoring", "Scoring!"),
    }
    for message, text in cases.items():
        result = run("apply", "-f", write(tmp_path, text, "bad.yaml"))
        assert result.exit_code == 2, result.output
        assert message in result.stderr
    assert dump_sqlite(db) == before


def test_conflicting_rollback_target_and_missing_ok(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("apply", "-f", write(tmp_path, DOC))
    result = run("rollback", "scoring")
    assert result.exit_code == 3 and "nothing to roll back to" in result.stderr
    result = run("rollback", "scoring", "--to", "7")
    assert result.exit_code == 3 and "no revision 7" in result.stderr
    assert run("delete", "ghost", "--missing-ok").exit_code == 0


def test_models_list_and_versions(run) -> None:  # type: ignore[no-untyped-def]
    listing = run("models", "list")
    assert listing.exit_code == 0 and "fraud" in listing.output
    rows = json.loads(run("models", "versions", "fraud", "-o", "json").stdout)
    assert [r["version"] for r in rows][:3] == ["1", "2", "3"]
    assert all(len(r["sha256"]) == 64 for r in rows)
    table = run("models", "versions", "fraud").output
    assert rows[0]["sha256"][:12] in table and rows[0]["sha256"] not in table


def test_console_script_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "overlay_sdk.cli", "--home", str(tmp_path), "get", "missing"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 3
    assert done.stderr.startswith("error: overlay 'missing' not found")


def test_models_register_from_a_uri_and_verify(run, registry_home: Path) -> None:  # type: ignore[no-untyped-def]
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{registry_home / 'mlflow.db'}")
    source = client.get_model_version("fraud", "1")
    result = run("models", "register", "fraud-copy", "--uri", "models:/fraud/1",
                 "--label", "copied", "-o", "json")
    assert result.exit_code == 0, result.stderr
    made = json.loads(result.stdout)
    assert made["sha256"] == source.tags["overlay.sha256"]
    assert made["source"] == "models:/fraud/1"
    again = run("models", "register", "fraud-copy", "--uri", "models:/fraud/1")
    assert again.exit_code == 0 and f"fraud-copy:{made['version']} " in again.output

    ok = run("models", "verify", "fraud-copy", made["version"])
    assert ok.exit_code == 0 and "verified" in ok.output
    bad = run("models", "register", "x", "--uri", "ftp://nope")
    assert bad.exit_code == 2 and "model" in bad.stderr
    assert run("models", "verify", "fraud-copy", "99").exit_code == 3


def test_models_verify_catches_a_tampered_artifact(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import overlay_sdk as ov

    from .conftest import _fit

    home = tmp_path / "own-home"
    with ov.connect(home) as cp:
        v = cp.models.register("tamper", model=_fit(2.0))
    pickles = list((home / "mlartifacts").rglob("model.pkl"))
    assert len(pickles) == 1
    pickles[0].write_bytes(pickles[0].read_bytes() + b"\0")
    result = CliRunner().invoke(cli, ["--home", str(home), "models", "verify", "tamper",
                                      v.version])
    assert result.exit_code == 1
    assert "failed verification" in result.stderr and "model.pkl" in result.stderr


def test_models_register_provider_and_image_from_the_terminal(tmp_path: Path) -> None:
    secret = "sk-" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6"
    runner = CliRunner()
    base = ["--home", str(tmp_path / "home")]
    made = runner.invoke(cli, [*base, "models", "register", "copilot", "--provider", "openai",
                               "--param", "model=gpt-4o-mini", "--param", "temperature=0.2",
                               "--api-key-env", "OPENAI_API_KEY", "-o", "json"])
    assert made.exit_code == 0, made.stderr
    assert json.loads(made.stdout)["source"] == "openai:gpt-4o-mini"
    refused = runner.invoke(cli, [*base, "models", "register", "copilot", "--provider",
                                  "openai", "--param", "model=gpt-4o-mini",
                                  "--api-key-env", secret])
    assert refused.exit_code == 2 and "api_key_env" in refused.stderr
    assert secret not in refused.stderr + refused.output
    image = runner.invoke(cli, [*base, "models", "register", "scorer", "--image",
                                "ghcr.io/acme/scorer:1.4", "--health-path", "/healthz",
                                "--resource", "cpu=2", "--resource", "memory=4Gi"])
    assert image.exit_code == 0 and "scorer:1" in image.output
    table = runner.invoke(cli, [*base, "models", "versions", "scorer"]).output
    assert "'memory': '4Gi'" in table
    for bad in (["--uri", "runs:/a/m", "--image", "x:1"], [], ["--provider", "openai",
                                                              "--param", "oops"]):
        result = runner.invoke(cli, [*base, "models", "register", "m", *bad])
        assert result.exit_code == 2, result.output
    files = b"".join(p.read_bytes() for p in (tmp_path / "home").rglob("*") if p.is_file())
    assert secret.encode() not in files


def test_models_rollback_moves_the_alias_and_the_overlays_follow(tmp_path: Path) -> None:
    import overlay_sdk as ov

    from .conftest import _fit

    home = tmp_path / "own-home"
    with ov.connect(home) as cp:
        for c in (1.0, 2.0):
            cp.models.register("churn", model=_fit(c))
        cp.models.set_alias("churn", "serving", "1")
        cp.models.set_alias("churn", "serving", "2")
        cp.overlays.create("live", host="http://127.0.0.1:8001", routes={"churn@serving": 100})
    runner = CliRunner()
    result = runner.invoke(cli, ["--home", str(home), "models", "rollback", "churn"])
    assert result.exit_code == 0, result.stderr
    assert result.output.strip() == "churn@serving: 2 -> 1"
    got = yaml.safe_load(runner.invoke(cli, ["--home", str(home), "get", "live", "-o",
                                             "yaml"]).output)
    assert got["spec"]["routes"][0]["version"] == "1"
    bad = runner.invoke(cli, ["--home", str(home), "models", "rollback", "churn", "--to",
                              "the good old days"])
    assert bad.exit_code == 2 and "yesterday" in bad.stderr
    none = runner.invoke(cli, ["--home", str(home), "models", "rollback", "churn", "--alias",
                               "never"])
    assert none.exit_code == 3


def test_alias_commands_from_the_terminal_alone(tmp_path: Path) -> None:
    import overlay_sdk as ov

    from .conftest import _fit

    home = tmp_path / "own-home"
    with ov.connect(home) as cp:
        for c in (1.0, 2.0):
            cp.models.register("churn", model=_fit(c), label=f"c{c:g}")
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(cli, ["--home", str(home), "--author", "ops", *args])

    assert run("models", "alias", "set", "churn", "serving", "1").output.strip() == \
        "churn@serving -> 1"
    follower = DOC.replace("name: scoring", "name: follower").split("  routes:")[0] + (
        "  routes: [{model: churn, alias: serving, weight: 100}]\n")
    clash = DOC.replace("fraud", "churn").replace('version: "1", weight: 90',
                                                  'alias: serving, weight: 90')
    assert run("apply", "-f", write(tmp_path, follower)).exit_code == 0
    assert run("apply", "-f", write(tmp_path, clash, "clash.yaml")).exit_code == 0
    refused = run("models", "alias", "set", "churn", "serving", "2")  # clash routes churn:2
    assert refused.exit_code == 4 and "'scoring'" in refused.stderr
    assert run("delete", "scoring").exit_code == 0
    assert run("models", "alias", "set", "churn", "serving", "2", "-m", "better").exit_code == 0
    got = yaml.safe_load(run("get", "follower", "-o", "yaml").output)
    assert got["spec"]["routes"][0]["version"] == "2"  # the overlay followed the alias
    rows = json.loads(run("models", "alias", "history", "churn", "-o", "json").stdout)
    assert [(r["version"], r["author"], r["reason"]) for r in rows] == [
        ("1", "ops", None), ("2", "ops", "better")]
    assert "churn@serving at " in run("models", "serving-at", "churn", rows[0]["time"]).output
    assert run("models", "alias", "delete", "churn", "unused").exit_code == 3
    assert run("models", "alias", "set", "churn", "serving", "9").exit_code == 3
    assert run("models", "alias", "set", "churn", "bad alias!", "1").exit_code == 2
    assert run("models", "serving-at", "churn", "someday").exit_code == 2


def test_register_refuses_options_of_another_kind(run) -> None:  # type: ignore[no-untyped-def]
    result = run("models", "register", "x", "--image", "ghcr.io/a/b:1", "--param", "model=x")
    assert result.exit_code == 2 and "--param" in result.stderr
    result = run("models", "register", "x", "--uri", "models:/fraud/1", "--port", "9000")
    assert result.exit_code == 2 and "--port does not apply with --uri" in result.stderr
    result = run("models", "register", "x", "--image", "ghcr.io/a/b:1", "--resource", "cpu=2",
                 "--resource", "cpu=3")
    assert result.exit_code == 2 and "cpu is given twice" in result.stderr


def test_conflict_and_backend_exit_codes(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from unittest import mock

    from overlay_sdk.errors import BackendError, ConflictError

    run("apply", "-f", write(tmp_path, DOC))
    with mock.patch("overlay_sdk.client.Overlay.rollback",
                    side_effect=ConflictError("overlay 'scoring' changed since it was read")):
        result = run("rollback", "scoring", "--to", "1")
    assert result.exit_code == 4 and "changed since" in result.stderr
    with mock.patch("overlay_sdk.client.Overlays.list",
                    side_effect=BackendError("store at /x failed: disk I/O error")):
        result = run("get")
    assert result.exit_code == 5 and "disk I/O error" in result.stderr


def test_init_and_models_list_bad_input(tmp_path: Path) -> None:
    afile = tmp_path / "a-file"
    afile.write_text("x")
    runner = CliRunner()
    result = runner.invoke(cli, ["--home", str(afile), "init"])
    assert result.exit_code == 2 and "home" in result.stderr
    result = runner.invoke(cli, ["--home", str(tmp_path / "h"), "models", "list", "-o", "xml"])
    assert result.exit_code == 2 and "Invalid value" in result.stderr
    result = runner.invoke(cli, ["--home", str(tmp_path / "h"), "--registry-uri", "",
                                 "init"])
    assert result.exit_code == 2 and "registry_uri" in result.stderr


def test_render_prints_the_manifests_the_operator_would_apply(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import yaml

    from overlay_sdk.k8s.render import RenderSettings, render
    from overlay_sdk.spec import parse_overlay

    shadowed = DOC + "  shadow: {model: fraud, version: \"3\", percent: 25}\n"
    result = run("render", "-f", write(tmp_path, shadowed), "-n", "team-a")
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all(result.output))
    expected = render(parse_overlay(yaml.safe_load(shadowed)),
                      settings=RenderSettings(namespace="team-a"))
    assert docs == expected  # the renderer's own output, as YAML
    service = next(d for d in docs if d["kind"] == "VirtualService")
    weighted = service["spec"]["http"][-1]
    assert sorted(r["weight"] for r in weighted["route"]) == [10, 90]
    assert weighted["mirrorPercentage"] == {"value": 25.0}
    assert {d["metadata"]["namespace"] for d in docs} == {"team-a"}
    # resolved from the registry: the same versions (all MLflow models here), aliases named
    resolved = run("render", "-f", write(tmp_path, shadowed), "--resolve")
    assert resolved.exit_code == 0 and "models:/" in resolved.output
    missing = run("render", "-f", write(tmp_path, DOC.replace('version: "2"', 'version: "9"')),
                  "--resolve")
    assert missing.exit_code == 2 and "spec.routes[1]" in missing.output
    bad = run("render", "-f", write(tmp_path, DOC.replace("weight: 10", "weight: 11")))
    assert bad.exit_code == 2 and "document 1" in bad.output
