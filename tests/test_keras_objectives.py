"""The paper's two objectives end to end: run (2 workers, SQLite), best, predict."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import optuna
import pytest
from conftest import ROOT, cli_env, optmpp_cmd

pytestmark = pytest.mark.slow


def cli(*args: str, cwd: Path = ROOT, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*optmpp_cmd(), *args], capture_output=True, text=True, env=cli_env(), cwd=cwd, timeout=timeout)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_hdpe_dnn_run_best_predict(tmp_path: Path, real_data: Path) -> None:
    study = tmp_path / "mi.toml"
    study.write_text(
        'name = "mi"\nn_trials = 6\nworkers = 2\n[algorithm]\nname = "hyperband"\n'
        '[objective]\nname = "hdpe-mi-dnn"\nmax_epochs = 3\nbatch_size = 128\nunits = [32, 64, 32]\n'
    )
    url = f"sqlite:///{tmp_path}/runs.db"
    out = cli("run", str(study), "--storage", url, "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)
    assert summary["counts"]["finished"] == 6 and summary["counts"]["fail"] == 0
    s = optuna.load_study(study_name="mi", storage=url)
    for t in s.trials:
        assert 1 <= t.user_attrs["epochs"] <= 3 and t.user_attrs["wall_time_s"] > 0
        # where the trial's time went: inside the epoch graphs, of which tracing a new one
        assert 0 < t.user_attrs["train_s"] < t.user_attrs["wall_time_s"]
        assert 0 <= t.user_attrs["trace_s"] <= t.user_attrs["train_s"]
        assert set(t.params) >= {"units_1", "alpha_1", "dropout_1", "num_layers", "learning_rate"}
        assert t.params["learning_rate"] in (1e-2, 1e-3, 1e-4)
        assert t.params["units_1"] % 32 == 0
    # each worker traces a depth's graph once: its first trial of a depth pays, a later one not
    first_of_depth: dict[tuple[object, object], float] = {}
    for t in sorted(s.trials, key=lambda t: t.datetime_start):
        first_of_depth.setdefault((t.user_attrs["worker"], t.params["num_layers"]), t.user_attrs["trace_s"])
    assert all(v > 0 for v in first_of_depth.values())
    assert sum(t.user_attrs["trace_s"] > 0 for t in s.trials) == len(first_of_depth)
    status = cli("status", "mi", "--storage", url, "--json")
    (row,) = json.loads(status.stdout)
    assert row["time_s"]["training"] == pytest.approx(sum(t.user_attrs["train_s"] for t in s.trials), abs=1e-2)
    assert 0 < row["time_s"]["tracing"] < row["time_s"]["training"] < row["time_s"]["trials"]
    assert re.search(r"time in trials \d+ s: \d+\.\d% training steps, \d+\.\d% tracing graphs",
                     cli("status", "mi", "--storage", url).stdout)
    models = tmp_path / "models"
    out = cli("best", str(study), "--storage", url, "--out", str(models), "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    best = json.loads(out.stdout)
    assert best["trial_number"] == s.best_trial.number
    assert 0.5 < best["mean"]["r2"] <= 1.0  # 3 epochs already explain most of the variance
    assert {"loss", "mae", "mape", "rmse", "r2", "rmse_units", "r2_units"} <= set(best["mean"])
    for f in ("model.keras", "optmpp-model.json", "metrics.csv", "parity.png"):
        assert (models / f).stat().st_size > 0
    assert (models / "parity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = json.loads((models / "optmpp-model.json").read_text())
    assert card["data"]["sha256"] == "e3f15f33bc5acc509d2d5df20adb446d2677e87cb2d95eeeeafd02dbf96bc2f2"

    # predict new process conditions; compare with the standard Keras model file loaded by hand
    src = real_data / "HDPE_LG_Plant_Data.csv"
    lines = src.read_text().splitlines()
    new = tmp_path / "new.csv"
    new.write_text("\n".join(lines[:21]) + "\n")
    pred_csv = tmp_path / "pred.csv"
    out = cli("predict", str(models), str(new), "-o", str(pred_csv))
    assert out.returncode == 0, out.stderr[-3000:]
    rows = read_csv(pred_csv)
    assert len(rows) == 20
    pred = np.array([float(r["predicted_MI_Plant"]) for r in rows])
    import keras

    model = keras.models.load_model(models / "model.keras")
    X = np.array([[float(r[c]) for c in card["features"]] for r in rows])
    xs = (X - np.array(card["x_scaler"]["mean"])) / np.array(card["x_scaler"]["scale"])
    direct = model.predict(xs.astype(np.float32), verbose=0).ravel() * card["y_scaler"]["scale"] + card["y_scaler"]["mean"]
    np.testing.assert_allclose(pred, direct, rtol=1e-4)
    true = np.array([float(r["MI_Plant"]) for r in rows])
    assert np.mean(np.abs(pred - true)) < 5.0  # MI spans 0.13-19.8 with a std of 5.0

    bad = tmp_path / "bad.csv"
    bad.write_text("C2,H2\n1,2\n")
    out = cli("predict", str(models), str(bad))
    assert out.returncode == 2 and "missing column(s) 'CAT'" in out.stderr


@pytest.mark.parametrize("model", ["search", "conv1d"])
def test_tg_cnn_run_best_predict(tmp_path: Path, real_data: Path, model: str) -> None:
    study = tmp_path / "tg.toml"
    study.write_text(
        'name = "tg"\nn_trials = 4\nworkers = 2\n[algorithm]\nname = "bohb"\n'
        f'[objective]\nname = "tg-cnn"\nmodel = "{model}"\nmax_epochs = 3\nbatch_size = 32\n'
        'conv_blocks = [1, 2]\nfilters = [8, 16]\ndense_blocks = [1, 1]\nunits = [16, 32]\n'
    )
    url = f"sqlite:///{tmp_path}/runs.db"
    out = cli("run", str(study), "--storage", url, "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout)["counts"]["finished"] == 4
    models = tmp_path / "models"
    out = cli("best", str(study), "--storage", url, "--out", str(models), "--json", "--splits", "2")
    assert out.returncode == 0, out.stderr[-3000:]
    best = json.loads(out.stdout)
    assert 0 < best["mean"]["rmse_units"] < 200  # K; Tg spans 178-538 K
    # --splits 2: the same hyperparameters retrained on split seed 1, whose test part has other molecules
    (own, other) = best["splits"]
    assert (own["split_seed"], other["split_seed"]) == (0, 1) and own["metrics"] == best["mean"]
    assert 0 < other["metrics"]["rmse_units"] < 200 and other["metrics"]["rmse_units"] != own["metrics"]["rmse_units"]
    assert other["metrics"]["rmse_unseen_units"] > 0
    card = json.loads((models / "optmpp-model.json").read_text())
    assert (models / "splits.csv").exists() and card["objective_options"]["split_seed"] == 0
    assert card["objective_options"]["model"] == model
    with zipfile.ZipFile(models / "model.keras") as saved:  # the architecture is its config.json
        layers = saved.read("config.json").decode()
    assert ('"Conv1D"' in layers) == (model == "conv1d") and ('"Conv2D"' in layers) == (model == "search")
    # 36 of the 53 test molecules are copies of training ones; the RMSE on the other 17 is
    # reported too, and its squared errors are part of the whole test set's
    for m in best["per_seed"]:
        assert 0 < m["rmse_unseen_units"] and 17 * m["rmse_unseen_units"] ** 2 <= 53 * m["rmse_units"] ** 2 + 1e-6
        assert m["rmse_unseen"] == pytest.approx(m["rmse_unseen_units"] / (m["rmse_units"] / m["rmse"]))
    card = json.loads((models / "optmpp-model.json").read_text())
    assert card["kind"] == "smiles" and card["encoder"]["kind"] == "tokens"
    assert "Cl" in card["encoder"]["vocabulary"]

    new = tmp_path / "new.csv"
    new.write_text("Polymer,SMILES Structure\npolystyrene,C=Cc1ccccc1\nPVC,C=CCl\n")
    out = cli("predict", str(models), str(new))
    assert out.returncode == 0, out.stderr[-3000:]
    rows = list(csv.DictReader(out.stdout.splitlines()))
    assert [r["Polymer"] for r in rows] == ["polystyrene", "PVC"]
    assert all(100 < float(r["predicted_Tg"]) < 700 for r in rows)
    # a molecule the saved model was trained on is marked with its measured Tg; a test molecule is not
    known = card["training_targets"]
    assert len(known) == len(set(known)) and 200 < len(known) < 299  # train + validation, repeats merged
    from optmpp.objectives import make_objective

    objective = make_objective("tg-cnn", {"model": model})
    test = objective.split["test"]
    unseen = [objective.table.smiles[i] for i, seen in zip(test, objective.seen_in_training("test")) if not seen]
    trained = next(iter(known))
    new.write_text(f"Polymer,SMILES Structure\na,{trained}\nb,{unseen[0]}\n")
    out = cli("predict", str(models), str(new))
    assert out.returncode == 0, out.stderr[-3000:]
    rows = list(csv.DictReader(out.stdout.splitlines()))
    assert [r["in_training_data"] for r in rows] == [f"{known[trained]:.6g}", ""]
    assert "note: 1 of 2 molecules are in the data the model was trained on" in out.stderr

    bad = tmp_path / "bad.csv"
    bad.write_text("name,smiles\nx,C=C[Si](C)C\ny,CCO\n")
    out = cli("predict", str(models), str(bad), "--smiles-column", "smiles")
    assert out.returncode == 2
    assert "line 2: SMILES 'C=C[Si](C)C': token '[Si]' is not in the model's vocabulary" in out.stderr


def test_tg_cnn_cross_validated_trials(tmp_path: Path, real_data: Path) -> None:
    """``cv_folds = 3``: a trial's value is the lowest mean of its three folds' validation losses
    (folds grouped by molecule), and ``best`` retrains on train + validation for that epoch."""
    from optmpp.objectives import make_objective

    options = {"model": "conv1d", "cv_folds": 3, "max_epochs": 4, "batch_size": 32, "restore_best": True,
               "filters": [8, 16], "dense_blocks": [1, 1], "units": [16, 32]}
    study = tmp_path / "tgcv.toml"
    study.write_text('name = "tgcv"\nn_trials = 4\nworkers = 2\n[algorithm]\nname = "bohb"\n[objective]\nname = "tg-cnn"\n'
                     + "".join(f"{k} = {json.dumps(v)}\n" for k, v in options.items()))
    url = f"sqlite:///{tmp_path}/runs.db"
    out = cli("check", str(study), "--storage", url)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "trials cross-validated in 3 folds over train + validation (299 rows; validation folds of" in out.stdout
    assert "0 validation and 36 test molecules are copies of training molecules" in out.stdout
    assert "a full trial trains 4 epochs in each of its 3 folds" in out.stdout
    out = cli("run", str(study), "--storage", url, "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout)["counts"]["finished"] == 4
    trials = optuna.load_study(study_name="tgcv", storage=url).get_trials(deepcopy=False)
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert done
    obj = make_objective("tg-cnn", options)
    for tr, va in obj.folds():  # a molecule's repeats never straddle a fold's train and validation parts
        assert not {obj.table.smiles[i] for i in tr} & {obj.table.smiles[i] for i in va}
    t = done[0]
    folds = [obj._trainer(f"fold{j}").train(obj.fast_net(t.params), 4, obj.options.seed + t.number)["val_loss"]
             for j in range(3)]
    mean = np.mean(folds, axis=0)
    assert [t.intermediate_values[e] for e in range(1, 5)] == pytest.approx(mean.tolist(), rel=1e-3)
    assert t.value == pytest.approx(mean.min(), rel=1e-3) and t.user_attrs["best_epoch"] == int(mean.argmin()) + 1
    assert t.user_attrs["fold_val_loss"] == pytest.approx([f[int(mean.argmin())] for f in folds], rel=1e-3)
    out = cli("best", str(study), "--storage", url, "--out", str(tmp_path / "m"), "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    best = json.loads(out.stdout)
    chosen = min(done, key=lambda u: u.value)
    assert best["trial_number"] == chosen.number and best["epochs"] == chosen.user_attrs["best_epoch"]
    assert 0 < best["mean"]["rmse_units"] < 200


def test_users_bring_their_own_csv(tmp_path: Path) -> None:
    """Both objectives on CSV files the test writes: other columns, longer SMILES."""
    from optmpp.objectives import make_objective

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = 2 * X[:, 0] - X[:, 1] ** 2 + 0.1 * rng.normal(size=300)
    proc = tmp_path / "process.csv"
    proc.write_text("temp,press,flow,quality\n" + "\n".join(f"{a},{b},{c},{d}" for (a, b, c), d in zip(X, y)) + "\n")
    dnn = make_objective("hdpe-mi-dnn", {"data_file": str(proc), "features": ["temp", "press", "flow"],
                                         "target": "quality", "max_epochs": 4, "split": "ordered"})
    # seeded: two unseeded trials that both draw learning rate 1e-4 learn too little in 4 epochs
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(dnn, n_trials=2)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    ev = dnn.evaluate(study.best_params, epochs=4)
    assert ev.metrics["r2"] > 0.3

    # a few polymers with SMILES longer than the paper's 65 characters
    smiles = [("C" * k) + "(O)" + ("c1ccccc1" * (k % 3)) + "Cl" * (k % 2) for k in range(20, 80)]
    prop = [300 + 2 * s.count("c") - 3 * s.count("Cl") + len(s) for s in smiles]
    mol = tmp_path / "mols.csv"
    mol.write_text("id,smi,Tm\n" + "\n".join(f"m{i},{s},{p}" for i, (s, p) in enumerate(zip(smiles, prop))) + "\n")
    assert max(len(s) for s in smiles) > 65
    cnn = make_objective("tg-cnn", {"data_file": str(mol), "smiles_column": "smi", "target": "Tm", "name_column": "id",
                                    "max_epochs": 2, "batch_size": 8, "filters": [4, 8], "units": [8, 16],
                                    "conv_blocks": [1, 1], "dense_blocks": [1, 1]})
    assert cnn.encoder.max_length >= 80
    study = optuna.create_study()
    study.optimize(cnn, n_trials=1)
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE
    with pytest.raises(Exception, match="more than the model's maximum of 65"):
        make_objective("tg-cnn", {"data_file": str(mol), "smiles_column": "smi", "target": "Tm", "encoding": "paper"})


def test_fast_dense_trainer_matches_the_saved_keras_model(real_data: Path) -> None:
    """The fast training path and the standard Keras model it saves agree."""
    from optmpp.objectives import make_objective

    obj = make_objective("hdpe-mi-dnn", {"max_epochs": 3})
    params = {"units_1": 64, "alpha_1": 0.1, "dropout_1": 0.2, "num_layers": 2, "units_hid_1": 32,
              "alpha_hid_1": 0.3, "dropout_hid_1": 0.1, "units_hid_2": 96, "alpha_hid_2": 0.05,
              "dropout_hid_2": 0.5, "learning_rate": 1e-3}
    ev = obj.evaluate(params, seed=1, epochs=3)
    assert ev.extra["max_abs_diff_fast_vs_keras"] < 1e-4
    assert len(ev.extra["train_loss"]) == 3 and ev.extra["train_loss"][-1] < ev.extra["train_loss"][0]
    # the validation loss the trial reports is the saved model's MSE on the validation part
    trainer = obj._trainer("tune")
    net = obj.fast_net(params)
    history = trainer.train(net, 2, seed=5)
    model = net.to_keras(obj.inputs.shape[1:])
    va = obj.split["val"]
    keras_val = float(np.mean((model.predict(obj.inputs[va], verbose=0).ravel() - obj.y[va]) ** 2))
    assert keras_val == pytest.approx(history["val_loss"][-1], rel=1e-4)
    # a second trial of the same depth reuses the traced function
    traces = trainer.traces
    trainer.train(obj.fast_net({**params, "units_1": 256, "units_hid_1": 512}), 1, seed=6)
    assert trainer.traces == traces


@pytest.mark.parametrize("model", ["search", "conv1d"])
def test_fast_cnn_trainer_matches_the_saved_keras_model(tmp_path: Path, real_data: Path, model: str) -> None:
    from optmpp.objectives import make_objective
    from optmpp.objectives.keras_common import import_keras

    obj = make_objective("tg-cnn", {"max_epochs": 2, "batch_size": 32, "model": model})
    params = {"conv_blocks": 2, "filters_1": 8, "kernel_1": 3, "filters_2": 12, "kernel_2": 2,
              "dense_blocks": 2, "units_1": 32, "dropout_1": 0.2, "units_2": 16, "dropout_2": 0.1,
              "learning_rate": 1e-3}
    ev = obj.evaluate(params, seed=0, epochs=2)
    assert ev.extra["max_abs_diff_fast_vs_keras"] < 1e-3  # standardised Tg
    trainer = obj._trainer("tune")
    net = obj.fast_net(params)
    history = trainer.train(net, 2, seed=3, restore_best=True)
    keras_model = net.to_keras(obj.inputs.shape[1:])
    assert ("Conv1D" in {type(layer).__name__ for layer in keras_model.layers}) == (model == "conv1d")
    va = obj.split["val"]
    keras_val = float(np.mean((keras_model.predict(obj.inputs[va], verbose=0).ravel() - obj.y[va]) ** 2))
    assert keras_val == pytest.approx(history["best_val"], rel=1e-3)
    traces = trainer.traces
    trainer.train(obj.fast_net({**params, "filters_1": 30, "kernel_1": 5, "units_1": 64}), 1, seed=4)
    assert trainer.traces == traces  # same family (2 conv, 2 dense blocks): no new trace
    # the Keras trainer builds the same architecture as the fast trainer's saved model
    built = obj.build(params)
    assert [type(layer).__name__ for layer in built.layers] == [type(layer).__name__ for layer in keras_model.layers]
    assert [w.shape for w in built.get_weights()] == [w.shape for w in keras_model.get_weights()]
    # a standard Keras file: keras.models.load_model gives the same predictions
    keras_model.save(tmp_path / "m.keras")
    loaded = import_keras().models.load_model(tmp_path / "m.keras")
    x = obj.inputs[obj.split["test"]]
    assert np.allclose(loaded.predict(x, verbose=0), keras_model.predict(x, verbose=0), atol=1e-5)


def test_fast_trainer_takes_kerass_adam_steps(real_data: Path) -> None:
    """Three Adam steps of the fast trainer and of Keras ``train_on_batch`` from the same weights
    land on the same weights (no dropout: the only randomness left is the batch order, and one
    batch's mean gradient does not depend on it); so do they when the fast trainer is given the
    Keras model's weights with ``start_state`` (and a seed whose own initialisation differs)."""
    from optmpp.objectives import make_objective
    from optmpp.objectives.fast_train import DenseNet, FastTrainer, start_state
    from optmpp.objectives.keras_common import import_keras

    keras = import_keras()
    obj = make_objective("hdpe-mi-dnn", {"max_epochs": 3})
    tr = obj.split["train"]
    x, y = obj.inputs[tr][:64].astype(np.float32), obj.y[tr][:64].astype(np.float32)
    for lr, alphas in ((1e-3, [0.1, 0.3]), (1e-2, [0.05, 0.45])):
        start = DenseNet(units=[64, 32], alphas=alphas, dropouts=[0.0, 0.0], learning_rate=lr)
        start.init((x.shape[1],), 0)
        model = start.to_keras(x.shape[1])
        model.compile(optimizer=keras.optimizers.Adam(lr), loss="mse")
        for _ in range(3):
            model.train_on_batch(x, y)
        trainer = FastTrainer(x, y, x, y, 64)
        net = DenseNet(units=[64, 32], alphas=alphas, dropouts=[0.0, 0.0], learning_rate=lr)
        trainer.train(net, 3, 0)  # 3 epochs of one batch, initialised as `start`
        moved = max(float(np.max(np.abs(a - b))) for a, b in zip(start.weights, model.get_weights()))
        diff = max(float(np.max(np.abs(a - b))) for a, b in zip(net.weights, model.get_weights()))
        assert moved > 1e-3 and diff < 1e-3 * moved, (lr, moved, diff)  # float round-off only
        given = DenseNet(units=[64, 32], alphas=alphas, dropouts=[0.0, 0.0], learning_rate=lr)
        trainer.train(given, 3, 7, resume=start_state(start.weights))
        diff = max(float(np.max(np.abs(a - b))) for a, b in zip(given.weights, model.get_weights()))
        assert diff < 1e-3 * moved, (lr, moved, diff)


def test_a_resume_state_can_start_several_runs(real_data: Path) -> None:
    """Training twice from one ``start_state`` gives two histories of their own (the state's lists
    are not appended to), and other seeds give other curves from the same weights."""
    from optmpp.objectives import make_objective
    from optmpp.objectives.fast_train import DenseNet, FastTrainer, start_state

    obj = make_objective("hdpe-mi-dnn", {"max_epochs": 3})
    tr, va = obj.split["train"], obj.split["val"]
    trainer = FastTrainer(obj.inputs[tr][:256], obj.y[tr][:256], obj.inputs[va][:64], obj.y[va][:64], 64)
    first = DenseNet(units=[32], alphas=[0.1], dropouts=[0.2], learning_rate=1e-3)
    first.init((obj.inputs.shape[1],), 0)
    start = start_state(first.weights)
    runs = [trainer.train(DenseNet(units=[32], alphas=[0.1], dropouts=[0.2], learning_rate=1e-3), 3, seed,
                          resume=start) for seed in (1, 2, 1)]
    assert [len(h["val_loss"]) for h in runs] == [3, 3, 3]
    assert start[0]["val_loss"] == [] and start[0]["train_loss"] == []
    assert runs[0]["val_loss"] == runs[2]["val_loss"]  # same seed, same weights: the same run
    assert runs[0]["val_loss"] != runs[1]["val_loss"]


def test_an_ensemble_of_seeds_is_one_standard_keras_model(tmp_path: Path, real_data: Path) -> None:
    """`optmpp best --ensemble`: the seeds' models averaged in one Keras file that loads as usual."""
    import keras

    from optmpp.objectives import make_objective

    obj = make_objective("tg-cnn", {"max_epochs": 2, "batch_size": 32})
    params = {"conv_blocks": 1, "filters_1": 8, "kernel_1": 3, "dense_blocks": 1, "units_1": 16,
              "dropout_1": 0.1, "learning_rate": 1e-3}
    evs = [obj.evaluate(params, seed=s, epochs=2) for s in (0, 1, 2)]
    ens = obj.ensemble(evs)
    np.testing.assert_allclose(ens.y_pred, np.mean([ev.y_pred for ev in evs], axis=0), atol=1e-3)  # K
    assert ens.metrics["rmse_units"] <= np.mean([ev.metrics["rmse_units"] for ev in evs]) + 1e-6
    assert "rmse_unseen_units" in ens.metrics  # scored as a single model is
    card = obj.save(ens, tmp_path)
    loaded = keras.models.load_model(tmp_path / card["model_file"])
    x = obj.inputs[obj.split["test"]]
    np.testing.assert_allclose(loaded.predict(x, verbose=0).ravel(), ens.model.predict(x, verbose=0).ravel(), atol=1e-6)
    with pytest.raises(ValueError, match="two or more"):
        obj.ensemble(evs[:1])
