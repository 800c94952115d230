"""How much of the Tg test set is a copy of the training set, and what that does to test RMSE.

    python benchmarks/tg_duplicates.py

The paper's Tg file repeats 125 polymers (same name, SMILES and Tg). This prints, for the
paper's split (``duplicates = "keep"``) and for the de-duplicated one (``"merge"``), how many
validation and test molecules are copies of training ones, and the test RMSE of simple
reference models fitted on train + validation, split into copies ("seen") and the others
("unseen"): ExtraTrees (500 trees) on token counts and on character 1-4-grams of the SMILES, and
1-nearest-neighbour on token counts. No TensorFlow; about 30 s on 2 cores.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rmse(e: np.ndarray) -> float:
    return float(np.sqrt(np.mean(e**2))) if len(e) else float("nan")


def main() -> None:
    from sklearn.ensemble import ExtraTreesRegressor
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.neighbors import KNeighborsRegressor

    from optmpp.objectives import make_objective

    print("| split | molecules (train / val / test) | val copies of train | test copies of train+val "
          "| model | test RMSE (K) | on copies | on the others |")
    print("|---|---|---|---|---|---|---|---|")
    for duplicates in ("keep", "merge"):
        obj = make_objective("tg-cnn", {"duplicates": duplicates})
        sp, y, smiles = obj.split, obj.y_raw, obj.table.smiles
        fit = np.concatenate([sp["train"], sp["val"]])
        test = sp["test"]
        seen = obj.seen_in_training("test")
        counts = obj.inputs.sum(axis=1).reshape(len(y), -1)  # token counts
        grams = CountVectorizer(analyzer="char", ngram_range=(1, 4), lowercase=False).fit_transform(smiles)
        models = [
            ("ExtraTrees, token counts", counts, ExtraTreesRegressor(500, random_state=0, n_jobs=2)),
            ("ExtraTrees, char 1-4-grams", grams.toarray().astype(float), ExtraTreesRegressor(500, random_state=0, n_jobs=2)),
            ("1-nearest neighbour, token counts", counts, KNeighborsRegressor(1)),
        ]
        sizes = f"{len(sp['train'])} / {len(sp['val'])} / {len(test)}"
        for name, x, model in models:
            err = model.fit(x[fit], y[fit]).predict(x[test]) - y[test]
            print(f"| {duplicates} | {sizes} | {int(obj.seen_in_training('val').sum())} | {int(seen.sum())} | {name} "
                  f"| {rmse(err):.1f} | {rmse(err[seen]):.1f} | {rmse(err[~seen]):.1f} |", flush=True)
    obj = make_objective("tg-cnn", {})
    fit = np.concatenate([obj.split["train"], obj.split["val"]])
    top = float(obj.y_raw[fit].max())
    above = [(obj.table.names[i], obj.table.smiles[i], float(obj.y_raw[i])) for i in obj.split["test"]
             if obj.y_raw[i] > top]
    print(f"\nhighest Tg among train+val: {top:.0f} K; test molecules above it: {above}")


if __name__ == "__main__":
    main()
