"""``optmpp predict``: a saved model (``optmpp best``) applied to a CSV of new inputs.

Tabular models need the feature columns by name (other columns are passed through); SMILES
models need the SMILES column and check every molecule against the stored vocabulary and
maximum length. Any bad row is an error that names it; nothing is silently skipped.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from optmpp.data import DataError, column_indices, parse_numeric_rows, read_csv_rows

__all__ = ["load_model_card", "predict_file"]


def load_model_card(model_dir: str | Path) -> dict[str, Any]:
    d = Path(model_dir)
    card_path = d / "optmpp-model.json"
    if not card_path.exists():
        raise DataError(f"{d}: not a saved optmpp model (no optmpp-model.json); create one with `optmpp best`")
    card = json.loads(card_path.read_text())
    if card.get("format") != "optmpp-model/1":
        raise DataError(f"{card_path}: unknown model format {card.get('format')!r}")
    if "kind" not in card or "model_file" not in card:
        raise DataError(
            f"{d}: holds the test metrics of study {card.get('study')!r} but no model: its objective "
            f"{card.get('objective')!r} saves none (a plug-in objective without a save method)"
        )
    return card


def _load_model(model_dir: Path, card: dict[str, Any]) -> Any:
    path = model_dir / card["model_file"]
    if card.get("framework") == "keras":
        from optmpp.objectives.keras_common import import_keras

        model = import_keras().models.load_model(path)
        return lambda x: np.asarray(model.predict(x, verbose=0, batch_size=4096)).reshape(-1)
    if card.get("framework") == "sklearn":
        import pickle

        with open(path, "rb") as fh:
            model = pickle.load(fh)  # noqa: S301 - our own file, written by `optmpp best`
        return lambda x: np.asarray(model.predict(x)).reshape(-1)
    raise DataError(f"{model_dir}: unknown framework {card.get('framework')!r}")


def _tabular_inputs(
    card: dict[str, Any], header: list[str], rows: list[tuple[int, list[str]]], path: Path, decimal_comma: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The model's inputs (standardised) and the raw feature values, row by row."""
    features = card["features"]
    index = column_indices(path, header, features, why=" that the model needs")
    X, _, bad = parse_numeric_rows(rows, features, index, decimal_comma)
    if bad:
        raise DataError(f"{path}: {len(bad)} bad row(s): " + "; ".join(f"line {ln}: {p}" for ln, p in bad[:10]))
    raw = np.asarray(X, dtype=float)
    mean, scale = np.asarray(card["x_scaler"]["mean"]), np.asarray(card["x_scaler"]["scale"])
    return ((raw - mean) / scale).astype(np.float32), raw


def outside_training_range(card: dict[str, Any], raw: np.ndarray) -> list[list[tuple[str, float, str, float]]] | None:
    """Per row, the features outside the range of the data the model was trained on, as
    ``(name, value, "<" or ">", bound)`` (an empty list where none is); None when the model
    card has no ranges (saved before optmpp recorded them)."""
    ranges = card.get("x_range")
    if not ranges:
        return None
    low, high = np.asarray(ranges["min"]), np.asarray(ranges["max"])
    any_out = ((raw < low) | (raw > high)).any(axis=1)  # most rows are inside: describe only the others
    return [[(name, float(v), "<", float(lo)) if v < lo else (name, float(v), ">", float(hi))
             for name, v, lo, hi in zip(card["features"], row, low, high) if v < lo or v > hi] if out else []
            for row, out in zip(raw, any_out)]


def _number(value: float, decimal_comma: bool) -> str:
    text = f"{value:.6g}"
    return text.replace(".", ",") if decimal_comma else text


def _describe(outside: list[tuple[str, float, str, float]], decimal_comma: bool = False, sep: str = "; ") -> str:
    return sep.join(f"{name} {_number(v, decimal_comma)} {op} {_number(bound, decimal_comma)}"
                     for name, v, op, bound in outside)


def _smiles_inputs(
    card: dict[str, Any], header: list[str], rows: list[tuple[int, list[str]]], path: Path, smiles_column: str | None
) -> tuple[np.ndarray, list[str]]:
    """The model's inputs and each row's SMILES as the model reads it (cleaned for "tokens")."""
    from optmpp.data.smiles import SmilesEncoder, clean_smiles

    column = smiles_column or card["smiles_column"]
    if column not in header:
        raise DataError(
            f"{path}: missing SMILES column {column!r}; the file has: {', '.join(repr(h) for h in header)} "
            "(choose one with --smiles-column)"
        )
    encoder = SmilesEncoder.from_dict(card["encoder"])
    i = header.index(column)
    smiles, bad = [], []
    for line, row in rows:
        raw = row[i] if i < len(row) else ""
        s = raw if encoder.kind == "paper" else clean_smiles(raw)
        problem = "missing SMILES" if not clean_smiles(raw) else encoder.problem(s)
        if problem:
            bad.append(f"line {line}: {problem}")
        smiles.append(s)
    if bad:
        raise DataError(f"{path}: {len(bad)} molecule(s) the model cannot read: " + "; ".join(bad[:10]))
    return encoder.encode(smiles), smiles


def predict_file(
    model_dir: str | Path, input_csv: str | Path, output_csv: str | Path | None = None, smiles_column: str | None = None
) -> np.ndarray:
    """Predict every row of ``input_csv``; write the rows plus ``predicted_<target>``.

    Writes to ``output_csv``, or to standard output when it is None, with the input's separator
    (and decimal commas when that is a semicolon). Returns the predictions.
    """
    model_dir, input_csv = Path(model_dir), Path(input_csv)
    card = load_model_card(model_dir)
    if not input_csv.is_file():
        raise DataError(f"{input_csv}: {'a folder, not a file' if input_csv.is_dir() else 'no such file'}")
    csv_rows = read_csv_rows(input_csv)
    header, rows, delimiter = csv_rows
    if not rows:
        raise DataError(f"{input_csv}: no data row")
    comma = delimiter == ";"  # a spreadsheet's export where the comma is the decimal mark
    # a last column that qualifies each prediction, where the model card holds what it needs
    flag_name, flags, message = None, [], ""
    if card["kind"] == "tabular":
        x, raw = _tabular_inputs(card, header, rows, input_csv, csv_rows.decimal_comma)
        outside = outside_training_range(card, raw)
        if outside is not None:
            flag_name, flags = "outside_training_range", [_describe(o, comma) for o in outside]
            shown = [f"line {line}: {_describe(o, sep=', ')}" for (line, _), o in zip(rows, outside) if o]
            message = (f"warning: {len(shown)} of {len(rows)} rows lie outside the range of the data the model was "
                       f"trained on, where its predictions are extrapolations: {'; '.join(shown[:5])}"
                       f"{f' (and {len(shown) - 5} more)' if len(shown) > 5 else ''}. The column "
                       "outside_training_range names them all.") if shown else ""
    elif card["kind"] == "smiles":
        x, smiles = _smiles_inputs(card, header, rows, input_csv, smiles_column)
        known = card.get("training_targets")
        if known is not None:
            flag_name = "in_training_data"
            flags = [_number(known[s], comma) if s in known else "" for s in smiles]
            seen = sum(s in known for s in smiles)
            message = (f"note: {seen} of {len(rows)} molecules are in the data the model was trained on (same "
                       "SMILES): for them the prediction is a fit, not a prediction; the column in_training_data "
                       f"gives their measured {card['target']}.") if seen else ""
    else:
        raise DataError(f"{model_dir}: unknown model kind {card['kind']!r}")
    pred = _load_model(model_dir, card)(x)
    y = pred * float(card["y_scaler"]["scale"]) + float(card["y_scaler"]["mean"])
    target = f"predicted_{card['target']}"
    buf = io.StringIO() if output_csv is None else None
    if output_csv is not None:
        Path(output_csv).parent.mkdir(parents=True, exist_ok=True)
    fh = open(output_csv, "w", newline="") if output_csv is not None else buf
    try:
        w = csv.writer(fh, delimiter=delimiter)
        w.writerow([*header, target, *([flag_name] if flag_name else [])])
        for i, ((line, row), value) in enumerate(zip(rows, y)):
            flag = [flags[i]] if flag_name else []
            w.writerow([*row[: len(header)], *[""] * (len(header) - len(row)), _number(value, comma), *flag])
    finally:
        if output_csv is not None:
            fh.close()
    if buf is not None:
        sys.stdout.write(buf.getvalue())
    if message:
        print(message, file=sys.stderr)
    return y
