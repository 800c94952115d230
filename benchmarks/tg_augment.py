"""Does SMILES augmentation help the Tg CNN? Randomised SMILES of each training molecule as extra
training rows, with and without averaging the test prediction over randomised SMILES.

    python benchmarks/tg_augment.py --split-seeds 6            # split seeds 0-5, ~3 min per split
    python benchmarks/tg_augment.py --split-seeds 3 --first-split 6 --copies 10 --aug-epochs 20

Needs RDKit (``make bench`` installs it). For each split seed of the ``tg-cnn`` objective (269 /
30 / 53 molecules), one CNN configuration (default: the best trial of
``studies/tg-cnn-20min.toml``, as ``tg_splits.py``) is trained on train + validation with Keras
``fit`` twice, from the same seed: on the file's SMILES for ``--epochs``, and on the file's SMILES
plus ``--copies`` randomised SMILES of each molecule (RDKit ``MolToSmiles(doRandom=True)``) for
``--aug-epochs``. The token vocabulary and length cover every SMILES used. Printed per split:
test RMSE (K) of the plain model; of the augmented model on the file's SMILES; of the augmented
model averaged over the file's SMILES and its ``--copies`` randomised ones ("TTA"); each also on
the test molecules that are not copies of training ones ("unseen"). Then the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tg_duplicates import rmse  # noqa: E402
from tg_splits import TUNED_20MIN  # noqa: E402


def randomised(smiles: str, k: int, rng: np.random.Generator) -> list[str]:
    """Up to ``k`` distinct randomised SMILES of one molecule (fewer for a small molecule)."""
    from rdkit import Chem, rdBase

    mol = Chem.MolFromSmiles(smiles)
    out: set[str] = set()
    for _ in range(5 * k):
        if len(out) == k:
            break
        rdBase.SeedRandomNumberGenerator(int(rng.integers(1 << 30)))
        out.add(Chem.MolToSmiles(mol, doRandom=True, canonical=False))
    return sorted(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split-seeds", type=int, default=6)
    ap.add_argument("--first-split", type=int, default=0)
    ap.add_argument("--copies", type=int, default=10, help="randomised SMILES per molecule")
    ap.add_argument("--epochs", type=int, default=78, help="epochs of the plain model")
    ap.add_argument("--aug-epochs", type=int, default=20, help="epochs of the augmented model")
    ap.add_argument("--params", type=json.loads, default=TUNED_20MIN, help="CNN configuration (JSON)")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        from rdkit import RDLogger
    except ImportError:
        sys.exit("this benchmark needs RDKit: `make bench` (or pip install rdkit)")
    RDLogger.DisableLog("rdApp.*")

    from optmpp.data.smiles import SmilesEncoder
    from optmpp.objectives import make_objective
    from optmpp.objectives.keras_common import import_keras

    keras = import_keras()
    print(f"# CNN {json.dumps(args.params)}, batch 16; plain {args.epochs} epochs, augmented "
          f"{args.aug_epochs} epochs on the file's SMILES + {args.copies} randomised ones each")
    print("| split seed | plain (K) | plain unseen | augmented | augmented unseen | augmented + TTA "
          "| augmented + TTA unseen | plain s | augmented s |")
    print("|---" * 9 + "|")
    cols: dict[str, list[float]] = {}
    for split in range(args.first_split, args.first_split + args.split_seeds):
        obj = make_objective("tg-cnn", {"split_seed": split})
        smiles, y, std = obj.table.smiles, obj.y, obj.y_scale[1]
        fit, test = np.concatenate([obj.split["train"], obj.split["val"]]), obj.split["test"]
        seen = obj.seen_in_training("test")
        rng = np.random.default_rng(split)
        extra = [randomised(s, args.copies, rng) for s in smiles]
        enc = SmilesEncoder.fit(list(smiles) + [a for v in extra for a in v])
        obj.encoder = enc  # build() reads the input shape from it
        x_test = enc.encode([smiles[i] for i in test])
        row: dict[str, float] = {}
        for mode in ("plain", "augmented"):
            keras.utils.set_random_seed(split)
            model = obj.build(args.params)
            rows = [(s, i) for i in fit for s in ([smiles[i]] + (extra[i] if mode == "augmented" else []))]
            x, t = enc.encode([s for s, _ in rows]), y[[i for _, i in rows]]
            t0 = time.perf_counter()
            model.fit(x, t, batch_size=16, epochs=args.epochs if mode == "plain" else args.aug_epochs,
                      verbose=0, shuffle=True)
            row[f"{mode} s"] = time.perf_counter() - t0
            preds = [model.predict(x_test, verbose=0).ravel()]
            err = (preds[0] - y[test]) * std
            row[mode], row[f"{mode} unseen"] = rmse(err), rmse(err[~seen])
            if mode == "augmented":
                for j in range(args.copies):
                    variant = [extra[i][j % len(extra[i])] for i in test]
                    preds.append(model.predict(enc.encode(variant), verbose=0).ravel())
                err = (np.mean(preds, axis=0) - y[test]) * std
                row["augmented + TTA"], row["augmented + TTA unseen"] = rmse(err), rmse(err[~seen])
        order = ["plain", "plain unseen", "augmented", "augmented unseen", "augmented + TTA",
                 "augmented + TTA unseen", "plain s", "augmented s"]
        cells = [f"{row[k]:.0f}" if k.endswith(" s") else f"{row[k]:.1f}" for k in order]
        print(f"| {split} | " + " | ".join(cells) + " |", flush=True)
        for k in order:
            cols.setdefault(k, []).append(row[k])
    print()
    for k, v in cols.items():
        if not k.endswith(" s"):
            print(f"{k}: median {statistics.median(v):.1f} K over {len(v)} splits")
    better = sum(a < p for a, p in zip(cols["augmented"], cols["plain"]))
    print(f"augmented below plain on {better} of {len(cols['plain'])} splits")


if __name__ == "__main__":
    main()
