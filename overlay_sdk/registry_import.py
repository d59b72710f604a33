"""Import an existing MLflow model by URI: ``register("fraud", model="runs:/<run_id>/model")``.

:meth:`overlay_sdk.registry.ModelRegistry.register` calls :func:`import_model` when
``model`` is a string. Accepted URIs, all resolved against the registry's own tracking
server (never MLflow's global default):

- ``runs:/<run_id>/<artifact_path>``: a model logged in a run (``mlflow.<flavor>.log_model``;
  in MLflow 3 the run's logged model of that name, else the run's artifacts at that path);
- ``models:/<name>/<version>`` and ``models:/<name>@<alias>``: a registered model version;
- ``models:/<model_id>``: an MLflow 3 logged model (``m-...``, ``model_info.model_uri``).

The model folder is downloaded as it is stored (its files are the version's artifacts, so an
imported model hashes like the same model registered directly when MLflow wrote the same
files), the flavor is read from ``MLmodel`` (``sklearn`` or ``onnx`` when it has that
flavor, else ``pyfunc``) and the features from its signature. Stages (``models:/name/Production``)
are not accepted: they are deprecated in MLflow; use a version or an alias.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from overlay_sdk.errors import NotFoundError, ValidationError
from overlay_sdk.registry_redact import redact

if TYPE_CHECKING:
    import pandas as pd

    from overlay_sdk.flavors import SavedModel
    from overlay_sdk.registry_backend import MlflowBackend

__all__ = ["ModelUri", "import_model", "parse_model_uri"]

_FORMS = ("runs:/<run_id>/<artifact_path>, models:/<name>/<version>, models:/<name>@<alias> "
          "or models:/<model_id>")
_MAX_URI = 2000
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_RUN = re.compile(r"^runs:/([0-9A-Za-z_-]+)(?:/(.*))?$")
_VERSION = re.compile(r"^models:/([^/@]+)/([^/]+)/?$")
_ALIAS = re.compile(r"^models:/([^/@]+)@([A-Za-z0-9_-]+)/?$")
_LOGGED = re.compile(r"^models:/(m-[0-9a-f]{8,64})/?$")
_PATH = re.compile(r"^[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*$")


@dataclass(frozen=True)
class ModelUri:
    """A parsed model URI; exactly one of run_id (+ path), version, alias or model_id."""

    text: str
    run_id: str | None = None
    path: str | None = None
    name: str | None = None
    version: str | None = None
    alias: str | None = None
    model_id: str | None = None


def _bad(message: str) -> ValidationError:
    return ValidationError.at("model", redact(message))


def parse_model_uri(text: str) -> ModelUri:
    """The parts of an MLflow model URI; ValidationError naming ``model`` otherwise."""
    if len(text) > _MAX_URI:
        raise _bad(f"a model URI has at most {_MAX_URI} characters, got {len(text)}; {_FORMS}")
    scheme = _SCHEME.match(text)
    if scheme is None:
        raise _bad(f"{text[:200]!r} is neither a model object nor an MLflow model URI; pass a "
                   f"fitted model object, or a URI: {_FORMS}")
    if scheme[1] not in ("runs", "models"):
        raise _bad(f"unsupported URI scheme {scheme[1]!r} in {text[:200]!r}; use {_FORMS}; "
                   "to import a model stored elsewhere, log it to MLflow first "
                   "(mlflow.<flavor>.log_model) and pass the model_uri it returns")
    if scheme[1] == "runs":
        run = _RUN.match(text)
        if run is None:
            raise _bad(f"{text[:200]!r} is not a runs:/ URI; write runs:/<run_id>/<artifact_path>,"
                       " e.g. runs:/0a1b2c.../model")
        path = (run[2] or "").strip("/")
        if not path:
            raise _bad(f"{text!r} names a run but no model in it; add the model's artifact "
                       f"path, e.g. runs:/{run[1]}/model")
        if not _PATH.match(path) or ".." in path.split("/"):
            raise _bad(f"{path!r} in {text!r} is not an artifact path; use letters, digits, "
                       "'.', '_', '-' and '/', e.g. runs:/<run_id>/model")
        return ModelUri(text, run_id=run[1], path=path)
    if (logged := _LOGGED.match(text)) is not None:
        return ModelUri(text, model_id=logged[1])
    if (alias := _ALIAS.match(text)) is not None:
        return ModelUri(text, name=alias[1], alias=alias[2])
    version = _VERSION.match(text)
    if version is not None and version[2].isdigit() and int(version[2]) > 0:
        return ModelUri(text, name=version[1], version=str(int(version[2])))
    if version is not None:
        raise _bad(f"{version[2]!r} in {text!r} is not a version number; stages are deprecated "
                   f"in MLflow: name a version or an alias, e.g. models:/{version[1]}/3 or "
                   f"models:/{version[1]}@champion")
    raise _bad(f"{text[:200]!r} does not name a model version; use {_FORMS}")


def _not_found(uri: ModelUri, err: NotFoundError) -> NotFoundError:
    return NotFoundError(redact(f"model={uri.text!r}: {err}"))


def _download(backend: MlflowBackend, uri: ModelUri, dst: Path) -> tuple[Path | None, str]:
    """The downloaded model folder (None if nothing is there) and the concrete source URI."""
    try:
        if uri.run_id is not None and uri.path is not None:
            return _download_run_model(backend, uri.run_id, uri.path, dst), uri.text
        if uri.model_id is not None:
            location = backend.logged_model(uri.model_id).artifact_location
            return backend.download(str(location), dst), uri.text
        assert uri.name is not None
        if uri.alias is not None:  # aliases move: record the version it named
            version = str(backend.model_version_by_alias(uri.name, uri.alias).version)
        else:
            assert uri.version is not None
            version = str(backend.model_version(uri.name, uri.version).version)
        location = backend.version_download_uri(uri.name, version)
        return backend.download(location, dst), f"models:/{uri.name}/{version}"
    except NotFoundError as err:
        raise _not_found(uri, err) from err


def _download_run_model(backend: MlflowBackend, run_id: str, path: str,
                        dst: Path) -> Path | None:
    """MLflow 3 logs a model as a LoggedModel named by its first path part; MLflow 2 (and
    overlay-sdk's own runs) as run artifacts. Try the first, then the second."""
    run = backend.run(run_id)
    first, _, rest = path.partition("/")
    logged = [m for m in backend.logged_models_of_run(run) if m.name == first]
    if logged:
        location = str(logged[0].artifact_location).rstrip("/") + (f"/{rest}" if rest else "")
        found = backend.download(location, dst / "logged")
        if found is not None and (found / "MLmodel").is_file():
            return found
    found = backend.download(f"{str(run.info.artifact_uri).rstrip('/')}/{path}", dst / "run")
    if found is not None and (found / "MLmodel").is_file():
        return found
    names = [f"runs:/{run_id}/{m.name}" for m in backend.logged_models_of_run(run)]
    raise NotFoundError(
        f"run {run_id} has no MLflow model at {path!r}; "
        + (f"the models logged in that run are {', '.join(names)}" if names
           else "no model was logged in that run")
        + "; pass the model_uri that log_model returned"
    )


def _flavor(flavors: dict[str, Any], requested: str | None, uri: str) -> str:
    if "python_function" not in flavors:
        raise _bad(f"{uri} has no python_function flavor (it has {', '.join(sorted(flavors))}),"
                   " so it cannot be served; log it with a flavor that supports "
                   "mlflow.pyfunc.load_model")
    detected = next((f for f in ("sklearn", "onnx") if f in flavors), "pyfunc")
    if requested is not None and requested != detected:
        raise ValidationError.at("flavor", f"{uri} is a {detected} model (from its MLmodel), "
                                 f"not {requested}; pass flavor={detected!r} or leave it out")
    return detected


def import_model(backend: MlflowBackend, text: str, tmp: Path, *, flavor: str | None,
                 reference: pd.DataFrame | None, signature: Any,
                 input_example: Any) -> SavedModel:
    """Download the model ``text`` names into ``tmp`` and describe it for registration."""
    from mlflow.models import Model

    from overlay_sdk.flavors import FLAVORS, SavedModel
    from overlay_sdk.hashing import IGNORED_FILES

    uri = parse_model_uri(text)
    if flavor is not None and flavor not in FLAVORS:
        raise ValidationError.at("flavor", f"unknown flavor {flavor!r}; use one of "
                                 f"{', '.join(FLAVORS)}, or leave it out to read it from MLmodel")
    for field, value in (("signature", signature), ("input_example", input_example)):
        if value is not None:
            raise ValidationError.at(field, f"an imported model keeps what it was logged with; "
                                     f"leave {field} out, or log the model again with it")
    local, source = _download(backend, uri, tmp / "download")
    if local is None or not (local / "MLmodel").is_file():
        raise NotFoundError(redact(f"model={text!r}: no MLflow model (MLmodel file) is stored "
                                   "there; pass the model_uri that log_model returned"))
    for name in IGNORED_FILES:  # MLflow's download bookkeeping, not the model
        (local / name).unlink(missing_ok=True)
    try:
        meta = Model.load(str(local))
    except Exception as err:  # a hand-written or damaged MLmodel: YAML or MLflow errors
        raise _bad(f"the MLmodel file of {text} cannot be read ({type(err).__name__}: {err}); "
                   "log the model again with mlflow.<flavor>.log_model") from None
    detected = _flavor(dict(meta.flavors), flavor, text)
    features: tuple[str, ...] = ()
    sig = meta.signature
    if sig is not None and sig.inputs is not None and sig.inputs.has_input_names():
        features = tuple(str(n) for n in sig.inputs.input_names())
        if reference is not None:
            lacking = [f for f in features if f not in reference.columns]
            if lacking:
                raise ValidationError.at("reference", f"lacks the model's feature columns "
                                         f"{lacking[:10]}; pass the data it was trained on")
    elif reference is not None:
        features = tuple(str(c) for c in reference.columns)
    return SavedModel(local, detected, source, features)
