"""Canonical SHA-256 identity of a saved model: the same content gives the same hash.

The registry (:mod:`overlay_sdk.registry`) saves a model with ``mlflow.<flavor>.save_model``
(or downloads an MLflow model it imports) into a folder, and calls :func:`model_identity`
on :func:`hash_model_dir` of that folder plus :func:`identity_config` (flavor, features and
:func:`hash_reference` of the reference data as stored). ``verify``
(:mod:`overlay_sdk.registry_verify`) re-hashes the stored artifacts with the same functions.

What the identity covers (format :data:`IDENTITY_FORMAT`): every file of the model folder
except the environment files (:data:`ENVIRONMENT_FILES`) and MLflow's download bookkeeping
(:data:`IGNORED_FILES`), plus the configuration. The environment files say how to install
the model, not what it computes, and MLflow writes them differently for the same model
(requirements inferred by ``log_model`` in a subprocess list whatever happened to be
imported); the pinned library versions that matter are in ``MLmodel`` anyway
(``sklearn_version``, the Python version). They are still recorded per file at
registration, so ``verify`` reports an edited ``requirements.txt``.

MLflow rewrites some bytes on every save, and cloudpickle embeds some per-process values,
so raw bytes are not hashed where they vary without the model changing:

- ``MLmodel``: parsed as YAML, the keys in :data:`VOLATILE_MLMODEL_KEYS` dropped (creation
  time, uuids, run and artifact ids, MLflow version, size) and each flavor's
  ``python_version`` cut to major.minor, then hashed as canonical JSON.
- scikit-learn attributes that hold an ``id()`` (``_stop_words_id``) are dropped from a
  copy before saving (:func:`overlay_sdk.flavors.without_process_local_state`).
- pickles (``*.pkl``): cloudpickle's class-tracker ids (a random uuid per class pickled by
  value, per process) renumbered; everything else in the pickle is hashed as written
  (cloudpickle already writes ``<dynamic-code>`` for code file names, so notebook cell
  file names do not leak in).
- every other file: its bytes.

Files are hashed in order of relative path (``/``-separated), each path included.
Reference data is hashed in a canonical form (columns, dtypes, index and
``pandas.util.hash_pandas_object`` values), never as parquet bytes.

Pure: reads files, imports neither MLflow nor a model library (pandas only inside
:func:`hash_reference`).
"""

from __future__ import annotations

import hashlib
import json
import pickletools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ENVIRONMENT_FILES",
    "IDENTITY_FORMAT",
    "IGNORED_FILES",
    "VOLATILE_MLMODEL_KEYS",
    "canonical_file",
    "canonical_json",
    "canonical_mlmodel",
    "canonical_pickle",
    "hash_model_dir",
    "hash_reference",
    "identity_config",
    "identity_files",
    "model_identity",
]

IDENTITY_FORMAT = "overlay-sdk/identity/2"
"""Bumped whenever canonicalisation changes, so old and new hashes never collide silently.
Format 1 also hashed the environment files and the model's ``source`` description."""

ENVIRONMENT_FILES = frozenset({"conda.yaml", "python_env.yaml", "requirements.txt"})
"""Top-level files of an MLflow model that say how to install it: hashed per file (so
``verify`` sees edits) but not part of the identity."""

IGNORED_FILES = frozenset({"registered_model_meta"})
"""Top-level files MLflow writes into a model folder when it downloads a registered model
(which name and version it came from): not the model's content, never hashed."""

VOLATILE_MLMODEL_KEYS = frozenset(
    {
        "artifact_path",
        "databricks_runtime",
        "mlflow_version",
        "model_id",
        "model_size_bytes",
        "model_uuid",
        "run_id",
        "utc_time_created",
    }
)
"""Top-level ``MLmodel`` keys MLflow writes afresh on every save or log."""

_TRACKER_ID = re.compile(r"^[0-9a-f]{32}$")
_CLOUDPICKLE_SKELETONS = frozenset({"_make_skeleton_class", "_make_skeleton_enum", "_make_typevar"})
_PICKLE_SUFFIXES = (".pkl", ".pickle")
_STRING_OPS = frozenset(
    {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE",
     "BINUNICODE8"}
)


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, no whitespace, UTF-8."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode("utf-8")


_PYTHON_PATCH = re.compile(r"^(\d+\.\d+)\.\d+\S*$")


def canonical_mlmodel(data: bytes) -> bytes:
    """An ``MLmodel`` file without the keys MLflow rewrites on every save, and with each
    flavor's ``python_version`` cut to major.minor (a patch release computes the same)."""
    doc = yaml.safe_load(data.decode("utf-8")) or {}
    if isinstance(doc, dict):
        doc = {k: v for k, v in doc.items() if k not in VOLATILE_MLMODEL_KEYS}
        if isinstance(doc.get("flavors"), dict):
            doc["flavors"] = {
                name: ({**conf, "python_version": _PYTHON_PATCH.sub(r"\1", conf["python_version"])}
                       if isinstance(conf, dict) and isinstance(conf.get("python_version"), str)
                       else conf)
                for name, conf in doc["flavors"].items()
            }
    return canonical_json(doc)


class _Str:
    """A string seen on the simulated pickle stack, with the offset of the opcode that made it."""

    __slots__ = ("pos", "value")

    def __init__(self, value: str, pos: int) -> None:
        self.value = value
        self.pos = pos


def _tracker_strings(data: bytes) -> dict[int, str]:
    """Class-tracker ids in a cloudpickle pickle, by offset of the opcode that holds them.

    Simulates the pickle stack symbolically (no object is built, no code runs) and marks
    the 32-hex-digit strings passed to cloudpickle's ``_make_skeleton_*`` / ``_make_typevar``.
    """
    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[int, Any] = {}
    found: dict[int, str] = {}
    for op, arg, pos in pickletools.genops(data):
        name = op.name
        if name == "MARK":
            marks.append(len(stack))
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[int(str(arg))] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo.get(int(str(arg))))
        elif name == "DUP":
            stack.append(stack[-1])
        elif name in _STRING_OPS:
            value = arg.decode("latin-1") if isinstance(arg, bytes) else str(arg)
            stack.append(_Str(value, int(pos or 0)))
        elif name == "GLOBAL":
            module, _, attr = str(arg).partition(" ")
            stack.append(("global", module, attr))
        else:
            before = op.stack_before
            popped: list[Any] = []
            if pickletools.markobject in before:
                top = stack[marks.pop():]
                del stack[len(stack) - len(top):]
                below = before.index(pickletools.markobject)
                popped = stack[len(stack) - below:] if below else []
                del stack[len(stack) - below:]
                popped = [*popped, tuple(top)]
            elif before:
                popped = stack[-len(before):]
                del stack[-len(before):]
            if name == "STACK_GLOBAL":
                mod, qual = (p.value if isinstance(p, _Str) else None for p in popped)
                stack.append(("global", mod, qual))
            elif name in ("TUPLE", "TUPLE1", "TUPLE2", "TUPLE3"):
                stack.append(popped[-1] if name == "TUPLE" else tuple(popped))
            elif name == "EMPTY_TUPLE":
                stack.append(())
            else:
                if name == "REDUCE" and isinstance(popped[1], tuple):
                    func = popped[0]
                    if (isinstance(func, tuple) and len(func) == 3 and func[0] == "global"
                            and str(func[1]).startswith("cloudpickle")
                            and func[2] in _CLOUDPICKLE_SKELETONS):
                        found.update(
                            (item.pos, item.value) for item in popped[1]
                            if isinstance(item, _Str) and _TRACKER_ID.match(item.value)
                        )
                stack.extend([None] * len(op.stack_after))
    return found


def canonical_pickle(data: bytes) -> bytes:
    """A pickle with cloudpickle's class-tracker ids replaced by stable placeholders.

    cloudpickle gives every class it pickles by value (classes defined in ``__main__`` or a
    notebook) a random uuid per process, so the same model pickles to different bytes in
    two processes. The ids are renumbered in order of appearance; the result is the same
    length and still a loadable pickle. Returns ``data`` unchanged when it pickles no such
    class (the common case, checked without parsing) or is not a readable pickle.
    """
    if not data.startswith(b"\x80") or (
        b"_make_skeleton_" not in data and b"_make_typevar" not in data
    ):
        return data
    try:
        trackers = _tracker_strings(data)
    except (ValueError, IndexError, KeyError, TypeError):
        return data
    out = bytearray(data)
    placeholders: dict[str, bytes] = {}
    for pos, value in sorted(trackers.items()):
        old = value.encode("ascii")
        new = placeholders.setdefault(value, f"{len(placeholders):032d}".encode("ascii"))
        start = data.find(old, pos)
        out[start:start + len(old)] = new
    return bytes(out)


def canonical_file(relpath: str, data: bytes) -> bytes:
    """The bytes that stand for one saved file in the identity hash (see module docs).

    ``MLmodel`` is recognised at the top level only, as MLflow writes it; pickles anywhere.
    """
    if relpath == "MLmodel":
        return canonical_mlmodel(data)
    if relpath.endswith(_PICKLE_SUFFIXES):
        return canonical_pickle(data)
    return data


def _needs_canonical_form(relpath: str) -> bool:
    return relpath == "MLmodel" or relpath.endswith(_PICKLE_SUFFIXES)


def hash_model_dir(path: str | Path) -> dict[str, str]:
    """SHA-256 (hex) of the canonical form of every file below ``path``, by relative path.

    Every file but :data:`IGNORED_FILES`, environment files included (see
    :func:`identity_files`). Files without a canonical form (weights, examples...) are
    streamed, not read whole.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"no saved model folder at {root}")
    digests: dict[str, str] = {}
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = file.relative_to(root).as_posix()
        if rel in IGNORED_FILES:
            continue
        if _needs_canonical_form(rel):
            digests[rel] = hashlib.sha256(canonical_file(rel, file.read_bytes())).hexdigest()
        else:
            with open(file, "rb") as handle:
                digests[rel] = hashlib.file_digest(handle, "sha256").hexdigest()
    return dict(sorted(digests.items()))


def hash_reference(frame: pd.DataFrame) -> str:
    """SHA-256 (hex) of a DataFrame's content: column names and order, dtypes, index, values.

    Equal frames hash equal whatever their storage (parquet, csv round trip with the same
    dtypes); a changed value, column name, dtype or row order changes the hash.
    """
    import pandas as pd

    h = hashlib.sha256()
    h.update(canonical_json({
        "columns": [str(c) for c in frame.columns],
        "dtypes": [str(t) for t in frame.dtypes],
        "index": str(frame.index.dtype),
        "shape": list(frame.shape),
    }))

    def values(obj: pd.Series | pd.Index) -> bytes:
        try:
            hashed = pd.util.hash_pandas_object(obj, index=False)
        except TypeError:  # unhashable cells such as lists: hash their repr
            hashed = pd.util.hash_pandas_object(pd.Series(obj).map(repr), index=False)
        return bytes(hashed.to_numpy(dtype="<u8").tobytes())

    h.update(values(frame.index))
    for i in range(frame.shape[1]):
        h.update(values(frame.iloc[:, i]))
    return h.hexdigest()


def identity_config(
    *, flavor: str, features: Sequence[str], reference: str | None,
    resources: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The canonical configuration that is part of the identity: the flavor, the input
    feature names, the :func:`hash_reference` of the reference data (None without) and the
    declared resources (the key only when declared, so that versions without a declaration
    keep the identity they had before resources existed).

    Labels, descriptions and where the model came from are not part of it."""
    config: dict[str, Any] = {"features": [str(f) for f in features], "flavor": flavor,
                              "reference": reference}
    if resources is not None:
        config["resources"] = dict(resources)
    return config


def identity_files(files: Mapping[str, str]) -> dict[str, str]:
    """The digests of :func:`hash_model_dir` that the identity covers: all but the
    top-level :data:`ENVIRONMENT_FILES`."""
    return {path: digest for path, digest in files.items() if path not in ENVIRONMENT_FILES}


def model_identity(files: Mapping[str, str], config: Mapping[str, Any]) -> str:
    """The identity SHA-256 (hex) of saved files (from :func:`hash_model_dir`) plus config.

    ``config`` is the canonical configuration (:func:`identity_config`); environment
    files in ``files`` are left out (:func:`identity_files`).
    """
    doc = {
        "config": dict(config),
        "files": sorted([str(path), str(digest)]
                        for path, digest in identity_files(files).items()),
        "format": IDENTITY_FORMAT,
    }
    return hashlib.sha256(canonical_json(doc)).hexdigest()
