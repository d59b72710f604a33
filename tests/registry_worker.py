"""A separate process for the cross-process identity tests in tests/test_registry.py.

    python registry_worker.py sklearn [--tweak]      print content_sha256 of a LogisticRegression
    python registry_worker.py sklearn-text           ... of a TfidfVectorizer + LogisticRegression
    python registry_worker.py pyfunc-class           ... of a PythonModel subclass defined here
    python registry_worker.py pyfunc-function        ... of a plain function defined here
    python registry_worker.py register TRACKING_URI  register the LogisticRegression, print
                                                      "version sha256"

Models are defined in this file's ``__main__``, as in a notebook, so that cloudpickle
pickles the pyfunc ones by value.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc.model import PythonModel
from sklearn.linear_model import LogisticRegression

from overlay_sdk.registry import ModelRegistry, content_sha256


def training_data() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.RandomState(7)
    X = pd.DataFrame(rng.rand(80, 3), columns=["amount", "age", "score"])
    y = (X["amount"] + 0.3 * X["score"] > 0.7).astype(int)
    return X, y


def fitted(tweak: bool = False) -> LogisticRegression:
    X, y = training_data()
    model = LogisticRegression(random_state=0).fit(X, y)
    if tweak:
        model.coef_[0, 0] += 1e-9
    return model


def text_pipeline() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline

    docs = ["good product fast", "bad slow product", "fast good", "slow bad bad", "ok fine"] * 4
    labels = [1, 0, 1, 0, 1] * 4
    return make_pipeline(TfidfVectorizer(max_df=0.5), LogisticRegression()).fit(docs, labels)


class Scaler(PythonModel):
    def __init__(self, factor: float) -> None:
        self.factor = factor

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        return model_input * self.factor


def doubled(frame: pd.DataFrame) -> pd.DataFrame:
    return frame * 2


def main(argv: list[str]) -> None:
    mode = argv[0]
    X, _ = training_data()
    if mode == "sklearn":
        print(content_sha256(fitted(tweak="--tweak" in argv), reference=X))
    elif mode == "sklearn-text":
        print(content_sha256(text_pipeline()))
    elif mode == "pyfunc-class":
        print(content_sha256(Scaler(1.5), reference=X))
    elif mode == "pyfunc-function":
        print(content_sha256(doubled, reference=X))
    elif mode == "register":
        version = ModelRegistry(argv[1]).register("fraud-xproc", fitted(), reference=X)
        print(version.version, version.sha256)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
