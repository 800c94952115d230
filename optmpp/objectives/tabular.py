"""Tabular process data shared by ``hdpe-mi-dnn`` and ``hdpe-mi-mlp``: options, loading, scaling."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from optmpp.data import find_data_file, load_numeric_table, split_indices, table_fingerprint

HDPE_FEATURES = ["C2", "H2", "CAT", "HX", "C3", "T", "P", "H2/C2", "C3/C4"]


@dataclass(frozen=True)
class TabularDataOptions:
    """Where the data is and how it is split (the paper's HDPE file by default)."""

    data_file: str = "HDPE_LG_Plant_Data.csv"
    features: list[str] = field(default_factory=lambda: list(HDPE_FEATURES))
    target: str = "MI_Plant"
    on_bad_rows: Literal["error", "drop"] = "error"
    split: Literal["random", "ordered"] = "random"
    test_size: float = 0.25
    val_size: float = 0.2
    split_seed: int = 0
    max_epochs: int = 27
    batch_size: int = 64

    def __post_init__(self) -> None:
        if not self.features:
            raise ValueError("features: at least one column is needed")
        if self.max_epochs < 1 or self.batch_size < 1:
            raise ValueError("max_epochs and batch_size must be >= 1")


class TabularData:
    """Loads the table, splits it, standardises X and y with scalers fitted on the training part
    (on training + validation where the objective cross-validates over them)."""

    def __init__(self, options: TabularDataOptions) -> None:
        from sklearn.preprocessing import StandardScaler

        path = find_data_file(options.data_file)
        self.table = load_numeric_table(path, options.features, options.target, options.on_bad_rows)
        tr, va, te = split_indices(len(self.table.y), options.split, options.test_size, options.val_size, options.split_seed)
        self.split = {"train": tr, "val": va, "test": te}
        self.split_kind = options.split
        # fitted on the rows that train: with cross-validation (cv_folds > 1), every fold's
        fit = tr if getattr(options, "cv_folds", 1) == 1 else np.concatenate([tr, va])
        self.x_scaler = StandardScaler().fit(self.table.X[fit])
        self.y_scaler = StandardScaler().fit(self.table.y[fit].reshape(-1, 1))
        self.inputs = self.x_scaler.transform(self.table.X).astype(np.float32)
        self.y = self.y_scaler.transform(self.table.y.reshape(-1, 1)).ravel().astype(np.float32)
        self.y_raw = self.table.y
        self.y_scale = (float(self.y_scaler.mean_[0]), float(self.y_scaler.scale_[0]))

    def describe(self) -> str:
        sizes = ", ".join(f"{k} {len(v)}" for k, v in self.split.items())
        return f"{self.table.describe()}; split {self.split_kind} ({sizes})"

    def predictor_meta(self) -> dict[str, Any]:
        """What ``optmpp predict`` needs: columns, scalers, input ranges, data checksum."""
        seen = self.table.X[np.concatenate([self.split["train"], self.split["val"]])]
        return {
            "kind": "tabular",
            "features": list(self.table.features),
            "target": self.table.target,
            "x_scaler": {"mean": self.x_scaler.mean_.tolist(), "scale": self.x_scaler.scale_.tolist()},
            "y_scaler": {"mean": self.y_scale[0], "scale": self.y_scale[1]},
            # what the saved model was trained on (train + validation): predict flags rows outside it
            "x_range": {"min": seen.min(axis=0).tolist(), "max": seen.max(axis=0).tolist()},
            "data": table_fingerprint(self.table),
        }
