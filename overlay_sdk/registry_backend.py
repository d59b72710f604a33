"""The MLflow side of the model registry: client calls with our errors, and nothing else.

:class:`overlay_sdk.registry.ModelRegistry` (validation, identity, locking, DataFrames)
calls :class:`MlflowBackend` for every read and write. Here MLflow failures become
:class:`~overlay_sdk.errors.BackendError` naming the tracking URI (credentials masked by
:func:`~overlay_sdk.registry_redact.redact`, in MLflow's error text too),
missing models, versions and aliases become :class:`~overlay_sdk.errors.NotFoundError`
saying what exists, and a failed registration is undone. Every call uses an explicit
tracking/registry URI (never MLflow's global default, which would create ``./mlflow.db``).
MLflow is imported on first use. :func:`file_lock` is the lock that serialises
registration between processes of one machine.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import logging
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from overlay_sdk.errors import BackendError, NotFoundError, OverlayError
from overlay_sdk.registry_redact import redact

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

__all__ = ["EXPERIMENT", "MlflowBackend", "file_lock", "safe_uri", "sqlite_path"]

EXPERIMENT = "overlay-sdk"
_PAGE = 1000
_DB_LOGGERS = ("mlflow.store.db.utils", "alembic")
_HINT = ("check that the URI is right, that the server or database is reachable and "
         "writable, and your credentials")


_SERVER_DATABASES = ("postgresql", "mysql", "mssql")
_PROBE_TIMEOUT_S = 10


def _probe(uri: str) -> None:
    """Connect once to a database server named by ``uri``, raising at once when it cannot
    be reached: MLflow would retry ten times with backoff (~100 s) before failing."""
    scheme = uri.split(":", 1)[0].split("+", 1)[0]
    if scheme not in _SERVER_DATABASES:
        return
    import sqlalchemy as sa

    args = {"connect_timeout": _PROBE_TIMEOUT_S} if scheme in ("postgresql", "mysql") else {}
    engine = sa.create_engine(uri, connect_args=args)
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


def safe_uri(uri: str) -> str:
    """``uri`` with any password and secret query value replaced by ``***``, for messages
    (:func:`~overlay_sdk.registry_redact.redact`)."""
    return redact(uri)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (absolute), else None."""
    if not uri.startswith("sqlite:///") or uri.endswith(":memory:"):
        return None
    return Path(uri[len("sqlite:///"):]).expanduser().absolute()


_NOT_THERE = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")  # runs, logged models


def _code(err: BaseException) -> str | None:
    """MLflow's error code (RESOURCE_DOES_NOT_EXIST, ...) of an MlflowException, else None."""
    return getattr(err, "error_code", None)


def _listing(items: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


@contextlib.contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    """Raise the given loggers to WARNING for the block (MLflow's DB-setup INFO lines)."""
    saved = [(lg, lg.level) for lg in map(logging.getLogger, loggers)]
    for lg, _ in saved:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in saved:
            lg.setLevel(level)


@contextlib.contextmanager
def file_lock(path: Path, timeout: float) -> Iterator[None]:
    """An exclusive ``fcntl.flock`` on ``path``; released when the block or process ends."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+b")  # noqa: SIM115 - closed below, after the lock is released
    except OSError as err:
        raise BackendError(redact(f"cannot open the registry lock {path} ({err}); pass a "
                                  "writable lock_dir")) from None
    with handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise BackendError(
                        f"another process has held the registry lock {path} for {timeout:.0f} s;"
                        " wait for it to finish, or end it if it hangs"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class MlflowBackend:
    """One MLflow tracking + registry location; the client is created on first use."""

    def __init__(self, tracking_uri: str, registry_uri: str, artifact_location: str | None):
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri
        self.artifact_location = artifact_location
        self._client_obj: MlflowClient | None = None

    @contextlib.contextmanager
    def failures(self, doing: str, hint: str = _HINT) -> Iterator[None]:
        """Turn any failure below us into a BackendError naming the tracking URI.

        The message quotes the failure's text with credentials masked (:func:`redact`:
        MLflow's errors repeat the request URL, password included); the original exception
        is not chained (``from None``), so no traceback printer shows it unmasked."""
        try:
            yield
        except OverlayError:
            raise
        except Exception as err:
            raise BackendError(redact(
                f"MLflow failed while {doing} (tracking URI {self.tracking_uri}): "
                f"{type(err).__name__}: {err}; {hint}"
            )) from None

    @property
    def client(self) -> MlflowClient:
        if self._client_obj is None:
            with self.failures("connecting"), _quiet(*_DB_LOGGERS):
                for uri in dict.fromkeys((self.tracking_uri, self.registry_uri)):
                    _probe(uri)
                from mlflow import MlflowClient

                self._client_obj = MlflowClient(self.tracking_uri, self.registry_uri)
        return self._client_obj

    def _pages(self, search: Callable[..., Any], **kwargs: Any) -> list[Any]:
        found: list[Any] = []
        token = None
        while True:
            page = search(max_results=_PAGE, page_token=token, **kwargs)
            found.extend(page)
            token = page.token
            if not token:
                return found

    # -- reads ----------------------------------------------------------------------------

    def registered_models(self) -> list[Any]:
        """Every MLflow RegisteredModel, by name."""
        with self.failures("listing models"):
            return sorted(self._pages(self.client.search_registered_models), key=lambda m: m.name)

    def _find(self, doing: str, call: Callable[..., Any], *args: Any,
              missing: tuple[str, ...] = ("RESOURCE_DOES_NOT_EXIST",)) -> Any | None:
        """``call(*args)``, or None when MLflow answers with one of the ``missing`` codes;
        other failures become BackendError (see :meth:`failures`)."""
        with self.failures(doing):
            try:
                return call(*args)
            except Exception as err:
                if _code(err) not in missing:
                    raise
        return None

    def exists(self, name: str) -> bool:
        found = self._find(f"reading model {name!r}", self.client.get_registered_model, name)
        return found is not None

    def registered_model(self, name: str) -> Any:
        """The MLflow RegisteredModel ``name``; NotFoundError naming what exists instead."""
        found = self._find(f"reading model {name!r}", self.client.get_registered_model, name)
        if found is not None:
            return found
        names = [m.name for m in self.registered_models()]
        close = difflib.get_close_matches(name, names, n=1)
        raise NotFoundError(
            f"no registered model named {name!r} in {safe_uri(self.tracking_uri)}"
            + (f"; did you mean {close[0]!r}?" if close else "")
            + (f"; registered models: {_listing(names)}" if names else "; no model is registered")
            + "; register one with register(name, model)"
        )

    def search_versions(self, name: str, tags: Mapping[str, str] | None = None) -> list[Any]:
        """Versions of ``name`` (with these tag values), oldest first. Names and tag values
        must be validated (no quotes) by the caller."""
        query = f"name='{name}'" + "".join(
            f" and tags.`{key}`='{value}'" for key, value in (tags or {}).items()
        )
        with self.failures(f"searching versions of {name!r}"):
            found = self._pages(self.client.search_model_versions, filter_string=query)
        return sorted(found, key=lambda mv: int(mv.version))

    def model_version(self, name: str, version: str) -> Any:
        """The MLflow ModelVersion; NotFoundError naming the model's versions."""
        found = self._find(f"reading {name}:{version}", self.client.get_model_version,
                           name, version)
        if found is not None:
            return found
        self.registered_model(name)  # raises if the model itself is missing
        existing = [str(mv.version) for mv in self.search_versions(name)]
        raise NotFoundError(
            f"model {name!r} has no version {version}; "
            + (f"its versions are {_listing(existing)}" if existing else "it has no versions yet")
        )

    def model_version_by_alias(self, name: str, alias: str) -> Any:
        """The MLflow ModelVersion ``alias`` points to; NotFoundError naming what exists."""
        aliases = dict(self.registered_model(name).aliases)
        if alias not in aliases:
            have = [f"{a} (-> {v})" for a, v in sorted(aliases.items())]
            versions = [str(mv.version) for mv in self.search_versions(name)]
            raise NotFoundError(
                f"model {name!r} has no alias {alias!r}; "
                + (f"its aliases are {_listing(have)}" if have else "it has no aliases")
                + (f"; or name a version: {_listing(versions)}" if versions else "")
            )
        with self.failures(f"resolving {name}@{alias}"):
            return self.client.get_model_version_by_alias(name, alias)

    def load_pyfunc(self, name: str, version: str) -> Any:
        """``mlflow.pyfunc.load_model`` of a version (artifacts of local stores are not copied)."""
        hint = "check that the packages in the model's requirements.txt are installed"
        with self.failures(f"loading {name}:{version}", hint), _quiet(*_DB_LOGGERS):
            import mlflow.artifacts
            import mlflow.pyfunc

            # Not a ``models:/`` URI: MLflow resolves those partly with the global default
            # client, which would create ./mlflow.db in the current directory.
            source = self.client.get_model_version_download_uri(name, version)
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=source, tracking_uri=self.tracking_uri)
            return mlflow.pyfunc.load_model(local)

    def run(self, run_id: str) -> Any:
        """The MLflow Run ``run_id``; NotFoundError when there is none."""
        found = self._find(f"reading run {run_id!r}", self.client.get_run, run_id,
                           missing=_NOT_THERE)
        if found is not None:
            return found
        raise NotFoundError(
            f"no run with id {run_id!r} in {safe_uri(self.tracking_uri)}; copy the run id from "
            "the MLflow UI or from mlflow.search_runs(), and check that the model was logged to "
            "this tracking server"
        )

    def logged_models_of_run(self, run: Any) -> list[Any]:
        """The MLflow 3 LoggedModels that ``run`` logged (``log_model(name=...)``), by name."""
        run_id = str(run.info.run_id)
        with self.failures(f"listing the models of run {run_id}"):
            found = self._pages(self.client.search_logged_models,
                                experiment_ids=[str(run.info.experiment_id)],
                                filter_string=f"source_run_id = '{run_id}'")
        return sorted((m for m in found if m.source_run_id == run_id), key=lambda m: m.name)

    def logged_model(self, model_id: str) -> Any:
        """The MLflow 3 LoggedModel ``model_id`` (``m-...``); NotFoundError when there is none."""
        found = self._find(f"reading logged model {model_id!r}", self.client.get_logged_model,
                           model_id, missing=_NOT_THERE)
        if found is not None:
            return found
        raise NotFoundError(
            f"no logged model with id {model_id!r} in {safe_uri(self.tracking_uri)}; use the "
            "model_uri that log_model returned (model_info.model_uri)"
        )

    def version_download_uri(self, name: str, version: str) -> str:
        """Where the artifacts of ``name`` version ``version`` are stored."""
        with self.failures(f"locating the artifacts of {name}:{version}"):
            return str(self.client.get_model_version_download_uri(name, version))

    def download(self, artifact_uri: str, dst: Path) -> Path | None:
        """Copy the file or folder at ``artifact_uri`` into the folder ``dst``; the local
        path, or None when nothing is stored there."""
        with self.failures(f"downloading {artifact_uri}"), _quiet(*_DB_LOGGERS):
            import mlflow.artifacts

            try:
                return Path(mlflow.artifacts.download_artifacts(
                    artifact_uri=artifact_uri, dst_path=str(dst),
                    tracking_uri=self.tracking_uri, registry_uri=self.registry_uri))
            except Exception as err:
                if _code(err) != "RESOURCE_DOES_NOT_EXIST" and not isinstance(
                        err, FileNotFoundError):
                    raise
                return None

    def read_parquet(self, run_id: str, path: str) -> pd.DataFrame:
        """A parquet artifact of a run, as a DataFrame."""
        with self.failures(f"reading {path} of run {run_id}"), \
                tempfile.TemporaryDirectory(prefix="overlay-artifact-") as tmp:
            import mlflow.artifacts
            import pandas as pd

            local = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=path, dst_path=tmp, tracking_uri=self.tracking_uri)
            return pd.read_parquet(local)

    # -- writes ---------------------------------------------------------------------------

    def experiment_id(self) -> str:
        """The ``overlay-sdk`` experiment, created with our artifact location if missing."""
        client = self.client
        with self.failures(f"opening experiment {EXPERIMENT!r}"):
            exp = client.get_experiment_by_name(EXPERIMENT)
            if exp is None:
                try:
                    return str(client.create_experiment(
                        EXPERIMENT, artifact_location=self.artifact_location))
                except Exception as err:  # another process created it first
                    if _code(err) != "RESOURCE_ALREADY_EXISTS":
                        raise
                    exp = client.get_experiment_by_name(EXPERIMENT)
            if exp is None:
                raise RuntimeError(f"experiment {EXPERIMENT!r} vanished while being created")
            if exp.lifecycle_stage == "deleted":
                client.restore_experiment(exp.experiment_id)
            return str(exp.experiment_id)

    def create_version(
        self, name: str, artifacts: Mapping[str, Path], tags: Mapping[str, str],
        description: str | None,
    ) -> Any:
        """Log ``artifacts`` (run artifact path -> local file or folder; ``model`` is the
        model folder) into a new run, then create a version of ``name`` from ``model``.

        All or nothing: on failure the run is deleted, and the registered model too if this
        call created it, before the BackendError propagates.
        """
        client = self.client
        experiment = self.experiment_id()
        run_id: str | None = None
        created_model = False
        with self.failures(f"registering {name!r}"):
            try:
                run = client.create_run(experiment, run_name=name, tags={"overlay.model": name})
                run_id = run.info.run_id
                for dest, local in artifacts.items():
                    if local.is_dir():
                        client.log_artifacts(run_id, str(local), artifact_path=dest)
                    else:
                        client.log_artifact(run_id, str(local), artifact_path=dest)
                client.set_terminated(run_id, "FINISHED")
                try:
                    client.create_registered_model(name)
                    created_model = True
                except Exception as err:
                    if _code(err) != "RESOURCE_ALREADY_EXISTS":
                        raise
                return client.create_model_version(
                    name, source=f"{run.info.artifact_uri}/model", run_id=run_id,
                    tags=dict(tags), description=description)
            except Exception:
                self.undo(run_id=run_id, model=name if created_model else None)
                raise

    def delete_version(self, name: str, version: str, run_id: str | None) -> None:
        """Remove a version we created (and its run)."""
        with self.failures(f"removing {name}:{version}"):
            self.client.delete_model_version(name, version)
        self.undo(run_id=run_id)

    def undo(self, *, run_id: str | None = None, model: str | None = None) -> None:
        """Best-effort cleanup after a failed registration; the original error wins."""
        if model is not None:
            with contextlib.suppress(Exception):
                self.client.delete_registered_model(model)
        if run_id is not None:
            with contextlib.suppress(Exception):
                self.client.delete_run(run_id)
