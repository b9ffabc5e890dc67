#!/usr/bin/env python3
"""An external Loopline trainer: scikit-learn, converted to ONNX with skl2onnx.

Loopline runs it as `python train.py <train.csv> <spec.json> <out-dir>` (the pipeline spec's
`trainer.command`, with {train}, {spec} and {out} substituted) and expects in <out-dir>:
  model.onnx    one input `features` float32 [N, F] in spec order, where a numeric feature is its
                value (NaN = missing) and a categorical one is the index of its value in the spec's
                `categories` (-1 = unknown); output `probabilities` float32 [N, C] in spec `classes`
                order (classification) or `value` float32 [N, 1] (regression).
  metrics.json  training metrics, a flat JSON object of numbers.
The preprocessing (imputation, scaling, one-hot encoding) is part of the sklearn Pipeline, so it
travels inside the ONNX graph with the model.
"""
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType


def encode(spec, rows):
    """Rows of strings -> float matrix in Loopline's input convention."""
    x = np.full((len(rows), len(spec["features"])), np.nan, dtype=np.float32)
    for j, f in enumerate(spec["features"]):
        cats = f.get("categories") or []
        for i, r in enumerate(rows):
            v = r[f["name"]]
            if f["kind"] == "categorical":
                x[i, j] = cats.index(v) if v in cats else -1
            elif v != "":
                x[i, j] = float(v)
    return x


def main(train_csv, spec_json, out_dir):
    spec = json.loads(Path(spec_json).read_text())
    with open(train_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    x = encode(spec, rows)
    feats = spec["features"]
    numeric = [j for j, f in enumerate(feats) if f["kind"] == "numeric"]
    categorical = [j for j, f in enumerate(feats) if f["kind"] == "categorical"]
    for j in categorical:
        if not feats[j].get("categories"):
            sys.exit(f"categorical feature {feats[j]['name']} needs its categories in the pipeline spec (model.categories)")
    pre = ColumnTransformer([
        ("num", Pipeline([("impute", SimpleImputer(strategy="mean")), ("scale", StandardScaler())]), numeric),
        ("cat", OneHotEncoder(categories=[np.arange(len(feats[j]["categories"]), dtype=np.float32) for j in categorical],
                              handle_unknown="ignore", sparse_output=False), categorical),
    ])
    task = spec["task"]
    if task == "regression":
        y = np.array([float(r["label"]) for r in rows])
        model = Pipeline([("pre", pre), ("model", LinearRegression())]).fit(x, y)
        pred = model.predict(x)
        metrics = {"mae": float(np.mean(np.abs(pred - y))), "rmse": float(math.sqrt(np.mean((pred - y) ** 2)))}
        options = None
    else:
        classes = spec["classes"]
        y = np.array([classes.index(r["label"]) for r in rows])
        model = Pipeline([("pre", pre), ("model", LogisticRegression(max_iter=1000, C=1.0))]).fit(x, y)
        proba = model.predict_proba(x)
        metrics = {
            "accuracy": float(np.mean(proba.argmax(axis=1) == y)),
            "logLoss": float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], 1e-15, 1)))),
        }
        options = {id(model.steps[-1][1]): {"zipmap": False}}
    onx = to_onnx(model, initial_types=[("features", FloatTensorType([None, x.shape[1]]))], options=options, target_opset=17)
    for o in onx.graph.output:  # Loopline's output names
        if o.name == "variable":
            o.name = "value"
    if task == "regression":
        for node in onx.graph.node:
            node.output[:] = ["value" if n == "variable" else n for n in node.output]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.onnx").write_bytes(onx.SerializeToString())
    (out / "metrics.json").write_text(json.dumps(metrics))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: train.py <train.csv> <spec.json> <out-dir>")
    main(*sys.argv[1:])
