from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optmpp.config import ConfigError, load_study_config, parse_study_config

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_every_shipped_study_file_loads() -> None:
    files = sorted((ROOT / "studies").glob("*.toml"))
    assert files
    for f in files:
        cfg = load_study_config(f)
        assert cfg.n_trials >= 1


def test_full_file(tmp_path: Path) -> None:
    p = write(tmp_path, """
name = "my-study"
direction = "minimize"
n_trials = 12
timeout = 30
seed = 3
workers = 2
storage = "sqlite:///x.db"
[algorithm]
name = "bohb"
reduction_factor = 2
[objective]
name = "toy_objectives:make"
max_epochs = 4
[reliability]
heartbeat_interval = 5
max_retry = 1
""")
    cfg = load_study_config(p)
    assert (cfg.name, cfg.n_trials, cfg.timeout, cfg.seed, cfg.workers) == ("my-study", 12, 30.0, 3, 2)
    assert cfg.algorithm.name == "bohb"
    assert cfg.algorithm.options["reduction_factor"] == 2
    assert cfg.algorithm.options["multivariate"] is True  # defaults filled in, pinned
    assert cfg.objective.options == {"max_epochs": 4}
    assert cfg.reliability.heartbeat_interval == 5
    assert cfg.reliability.effective_grace_period == 10
    assert "storage" not in cfg.to_dict()


def test_short_forms_and_default_name(tmp_path: Path) -> None:
    cfg = load_study_config(write(tmp_path, 'algorithm = "tpe"\nobjective = "hdpe-mi-mlp"\n', "abc-def.toml"))
    assert cfg.name == "abc-def"
    assert cfg.algorithm.options["multivariate"] is False
    assert cfg.algorithm.options["constant_liar"] is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('algorithm = "random"\nobjective = "hdpe-mi-mlp"\nn_trial = 3\n', ["unknown key 'n_trial'", "allowed keys", "n_trials"]),
        ('algorithm = "random"\nobjective = "hdpe-mi-mlp"\nn_trials = "3"\n', ["n_trials", "expected an integer"]),
        ('algorithm = "random"\nobjective = "hdpe-mi-mlp"\nn_trials = 0\n', ["n_trials", ">= 1"]),
        ('algorithm = "hyperbnd"\nobjective = "hdpe-mi-mlp"\n', ["algorithm.name", "unknown algorithm 'hyperbnd'", "hyperband", "bohb"]),
        ('algorithm = "random"\nobjective = "nope"\n', ["objective.name", "unknown objective 'nope'", "hdpe-mi-mlp", "package.module:factory"]),
        ('[algorithm]\nname = "hyperband"\nreduction = 3\n[objective]\nname = "hdpe-mi-mlp"\n', ["algorithm", "unknown key 'reduction'", "reduction_factor"]),
        ('[algorithm]\nname = "hyperband"\nreduction_factor = 1\n[objective]\nname = "hdpe-mi-mlp"\n', ["algorithm", "reduction_factor must be >= 2"]),
        ('[algorithm]\nname = "tpe"\nmultivariate = "yes"\n[objective]\nname = "hdpe-mi-mlp"\n', ["algorithm.multivariate", "true or false"]),
        ('algorithm = "random"\nobjective = "hdpe-mi-mlp"\ndirection = "down"\n', ["direction", "'minimize', 'maximize'"]),
        ('algorithm = "random"\n', ["missing key 'objective'"]),
        ('algorithm = "random"\nobjective = "hdpe-mi-mlp"\nname = "bad name!"\n', ["name", "not a valid study name"]),
        ('algorithm = "random"\nobjective = "hdpe-mi-mlp"\n[reliability]\ngrace_period = 5\n', ["grace_period", "heartbeat_interval"]),
        ('algorithm = [1]\nobjective = "hdpe-mi-mlp"\n', ["algorithm", "expected a name"]),
        ("n_trials = = 3", ["invalid TOML"]),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, text: str, expected: list[str]) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_study_config(p)
    msg = str(info.value)
    assert str(p) in msg
    for e in expected:
        assert e in msg, (e, msg)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such study file"):
        load_study_config(tmp_path / "none.toml")


def test_objective_options_are_checked_by_the_factory(real_data: Path) -> None:
    from optmpp.objectives import make_objective

    with pytest.raises(ConfigError, match=r"s\.toml: objective: unknown key 'max_epoch'; allowed keys: .*max_epochs"):
        make_objective("hdpe-mi-mlp", {"max_epoch": 3}, "s.toml")
    with pytest.raises(ConfigError, match=r"objective\.batch_size: expected an integer"):
        make_objective("hdpe-mi-mlp", {"batch_size": 1.5})
    with pytest.raises(ConfigError, match=r"objective\.units: expected a list of 2 values"):
        make_objective("hdpe-mi-mlp", {"units": [1]})


toml_values = st.recursive(
    st.one_of(st.integers(-5, 5), st.floats(allow_nan=False, width=32), st.booleans(), st.text(string.printable, max_size=8)),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(["name", "x", "seed"]), children, max_size=3),
    max_leaves=6,
)
keys = st.sampled_from(
    ["name", "direction", "n_trials", "timeout", "seed", "workers", "storage", "objective", "algorithm", "reliability", "bogus"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, toml_values, max_size=6))
def test_fuzz_parsed_tables_raise_only_config_errors(data: dict) -> None:
    try:
        parse_study_config(data, "fuzz.toml")
    except ConfigError as exc:
        assert "fuzz.toml" in str(exc)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_raw_text_raises_only_config_errors(text: str) -> None:
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return
    try:
        parse_study_config(data, "fuzz.toml")
    except ConfigError:
        pass
