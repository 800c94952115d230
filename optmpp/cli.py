"""The ``optmpp`` command: one subcommand per user verb; parse, call, print.

Exit codes: 0 done, 2 bad input (study file, options, data), 3 storage unreachable,
130 interrupted. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from optmpp import __version__

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_STORAGE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _err(msg: str) -> None:
    print(f"optmpp: error: {msg}", file=sys.stderr, flush=True)


def _info(args: argparse.Namespace, msg: str) -> None:
    if not getattr(args, "quiet", False):
        print(msg, file=sys.stderr, flush=True)


def _load(args: argparse.Namespace) -> tuple[Any, str]:
    from optmpp.config import load_study_config
    from optmpp.storage import resolve_storage_url

    config = load_study_config(args.study)
    url = resolve_storage_url(args.storage, config.storage)
    return config, url


def _print_summary(args: argparse.Namespace, summary: Any) -> None:
    if args.json:
        print(json.dumps(summary.as_dict(), indent=2, default=str))
    else:
        print(summary.format())


def cmd_run(args: argparse.Namespace) -> int:
    from optmpp.workers import run_study

    config, url = _load(args)
    summary = run_study(
        config,
        url,
        workers=args.workers,
        n_trials=args.n_trials,
        timeout=args.timeout,
        threads=args.threads,
        log=(lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True)),
        verbose_workers=args.verbose,
        show_progress=not args.quiet,
    )
    _print_summary(args, summary)
    return EXIT_FAILED if summary.errors else EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from optmpp.check import check_study

    config, url = _load(args)
    result = check_study(config, url, workers=args.workers, n_trials=args.n_trials, timeout=args.timeout)
    print(json.dumps(result.as_dict(), indent=2, default=str) if args.json else result.format())
    return EXIT_OK


def cmd_worker(args: argparse.Namespace) -> int:
    from optmpp.workers import default_threads, prepare_study, run_worker, summarize_study

    config, url = _load(args)
    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    n_trials = args.n_trials or config.n_trials
    t0 = time.monotonic()
    study, _ = prepare_study(config, url, n_trials, log=log)

    got_sigterm = []

    def on_term(signum: int, frame: Any) -> None:
        got_sigterm.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    code = EXIT_OK
    progress = None
    if not args.quiet:
        from optmpp.progress import Progress
        from optmpp.workers import snapshot

        progress = Progress(n_trials, finished_at_start=snapshot(study)[0]["finished"],
                            timeout=args.timeout if args.timeout is not None else config.timeout)
    try:
        stats = run_worker(
            config, url, worker_index=args.index if args.index is not None else os.getpid(),
            n_trials=n_trials, timeout=args.timeout, threads=args.threads or default_threads(1),
            log=log, verbose=args.verbose,
            on_trial=None if progress is None else (lambda s: progress.update(*snapshot(s))),
        )
        if progress is not None:
            progress.close()
        reasons = [stats.stop_reason]
        if stats.failed_out:
            code = EXIT_FAILED
    except KeyboardInterrupt:
        what = "SIGTERM" if got_sigterm else "interrupted"
        print(f"optmpp worker: {what}; the running trial was marked FAIL", file=sys.stderr, flush=True)
        reasons = [f"{what}; the running trial was marked FAIL"]
        code = EXIT_OK if got_sigterm else EXIT_INTERRUPTED
    _print_summary(args, summarize_study(study, n_trials, time.monotonic() - t0, reasons))
    return code


def cmd_best(args: argparse.Namespace) -> int:
    from optmpp.best import format_metrics_table, format_splits_table, retrain_best

    config, url = _load(args)
    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    result = retrain_best(config, url, seeds=args.seeds, out_dir=args.out, log=log, ensemble=args.ensemble,
                          splits=args.splits)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, default=str))
    else:
        print(format_metrics_table(result))
        if result.splits:
            print("\n" + format_splits_table(result))
        if result.out_dir:
            print(f"\nsaved to {result.out_dir}/: {', '.join(result.files)}")
            if result.model_file:
                print(f"predict with: optmpp predict {result.out_dir} INPUT.csv -o OUT.csv")
            else:
                print(f"no model saved: the objective {config.objective.name!r} has no save method, "
                      "so `optmpp predict` cannot use this folder")
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    from optmpp.predict import predict_file

    y = predict_file(args.model_dir, args.input, args.output, smiles_column=args.smiles_column)
    if args.output:
        _info(args, f"{len(y)} predictions written to {args.output}")
    return EXIT_OK


def cmd_plots(args: argparse.Namespace) -> int:
    import optuna

    from optmpp.config import ConfigError
    from optmpp.report import write_study_figures
    from optmpp.storage import make_storage, redact_url

    config, url = _load(args)
    try:
        study = optuna.load_study(study_name=config.name, storage=make_storage(url, heartbeat_interval=None, must_exist=True))
    except KeyError:
        raise ConfigError(f"no study {config.name!r} in {redact_url(url)}; run it first") from None
    out = args.out or f"runs/plots/{config.name}"
    files = write_study_figures(study, out, log=lambda m: _info(args, m))
    for f in files:
        print(f)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from optmpp.storage import redact_url, resolve_storage_url
    from optmpp.workers import storage_status

    url = resolve_storage_url(args.storage)
    rows = storage_status(url, args.study, recent_s=args.recent)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return EXIT_OK
    print(f"storage {redact_url(url)}: {len(rows)} stud{'y' if len(rows) == 1 else 'ies'}")
    for r in rows:
        c = r["counts"]
        best = "-" if r["best_value"] is None else f"{r['best_value']:.6g} (trial {r['best_trial']})"
        target = f"/{r['n_trials']}" if r["n_trials"] else ""
        print(
            f"  {r['study']}  [{r['objective'] or '?'} / {r['algorithm'] or '?'}, {r['direction']}]\n"
            f"    {c['finished']}{target} finished: {c['complete']} complete, {c['pruned']} pruned; "
            f"{c['fail']} failed, {c['running']} running, {c['waiting']} queued; epochs {r['epochs']}\n"
            f"    best {best}; workers seen in the last {args.recent:g} s: {len(r['workers_recent'])}"
            + (f" ({', '.join(r['workers_recent'])})" if r["workers_recent"] else "")
        )
        t = r["time_s"]
        if t and t["trials"] > 0:
            where = ""
            if t["training"] > 0:
                steps = (t["training"] - t["tracing"]) / t["trials"]
                where = f": {100 * steps:.1f}% training steps, {100 * t['tracing'] / t['trials']:.1f}% tracing graphs"
            print(f"    time in trials {t['trials']:,.0f} s{where}")
    return EXIT_OK


def _print_report(args: argparse.Namespace, result: dict[str, Any]) -> None:
    if args.json:
        keys = ("out_dir", "files", "rows", "facts", "errors")
        print(json.dumps({k: result[k] for k in keys if k in result}, indent=2, default=str))
        return
    print(result["table"])
    print(f"written to {result['out_dir']}/: {', '.join(result['files'])}")


def cmd_compare(args: argparse.Namespace) -> int:
    from optmpp.compare import load_compare_config, run_compare
    from optmpp.storage import resolve_storage_url

    config = load_compare_config(args.comparison)
    url = resolve_storage_url(args.storage, config.storage)
    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    result = run_compare(config, url, workers=args.workers, seeds=args.seeds, out_dir=args.out,
                         retrain=not args.no_retrain, splits=args.splits, threads=args.threads, log=log,
                         show_progress=not args.quiet)
    _print_report(args, result)
    for error in result.get("errors", []):
        _err(f"a worker stopped on an error: {error}")
    return EXIT_FAILED if result.get("errors") else EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from optmpp.compare import report
    from optmpp.storage import resolve_storage_url

    url = resolve_storage_url(args.storage_url)
    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    out = args.out or f"runs/report/{args.title or args.studies[0]}"
    result = report(url, args.studies, out, title=args.title, retrain=not args.no_retrain, splits=args.splits,
                    log=log)
    _print_report(args, result)
    return EXIT_OK


def cmd_algorithms(args: argparse.Namespace) -> int:
    from optmpp.algorithms import ALGORITHMS

    if args.json:
        print(json.dumps(
            [{"name": s.name, "sampler": s.sampler, "pruner": s.pruner, "paper": s.paper_name,
              "options": s.describe_options()} for s in ALGORITHMS.values()], indent=2))
        return EXIT_OK
    rows = [("name", "sampler", "pruner", "paper / reference")]
    rows += [(s.name, s.sampler, s.pruner, s.paper_name) for s in ALGORITHMS.values()]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print("\n[algorithm] overrides (defaults):")
    for s in ALGORITHMS.values():
        print(f"  {s.name}: {s.describe_options()}")
    return EXIT_OK


def cmd_objectives(args: argparse.Namespace) -> int:
    from optmpp.objectives import list_objectives

    found = list_objectives()
    if args.json:
        print(json.dumps([o.__dict__ for o in found], indent=2))
        return EXIT_OK
    width = max(len(o.name) for o in found)
    for o in found:
        print(f"{o.name.ljust(width)}  {o.target}  [{o.source}]")
    print("\nOr name a factory in a study file: objective = \"package.module:factory\"")
    return EXIT_OK


def cmd_dashboard(args: argparse.Namespace) -> int:
    from optmpp.storage import make_storage, redact_url, resolve_storage_url

    url = resolve_storage_url(args.storage)
    storage = make_storage(url, heartbeat_interval=None, must_exist=True)
    try:
        import optuna_dashboard
    except ImportError:
        _err("optuna-dashboard is not installed: pip install optuna-dashboard")
        return EXIT_BAD_INPUT
    print(
        f"optuna-dashboard for {redact_url(url)} on http://{args.host}:{args.port}/ (Ctrl-C stops it)",
        file=sys.stderr, flush=True,
    )
    optuna_dashboard.run_server(storage, host=args.host, port=args.port)
    return EXIT_OK


def cmd_data_fetch(args: argparse.Namespace) -> int:
    from optmpp.data import fetch_datasets

    fetch_datasets(args.data_dir, args.names or None, base_url=args.base_url,
                   log=lambda m: _info(args, m))
    return EXIT_OK


SPLITS_HELP = ("retrain each study's best trial on N random splits of the data (the study's and N-1 more) and "
               "give the table's test metrics over seeds x splits (default 1: the study's split only)")


def _positive(convert: Any, expected: str) -> Any:
    """An argparse type: ``convert(text)``, which must be > 0 and finite, else "expected ..."."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value

    return parse


_count = _positive(int, "an integer >= 1")  # workers, trials, threads, seeds, splits
_seconds = _positive(float, "a number of seconds > 0")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 1-65535, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="optmpp",
        description="Tune deep-learning models of molecular and polymer properties with Optuna.",
        epilog="Exit codes: 0 done, 2 bad input, 3 storage unreachable, 130 interrupted.",
    )
    p.add_argument("--version", action="version", version=f"optmpp {__version__}")
    p.add_argument("--data-dir", help="data directory (default: $OPTMPP_DATA_DIR, else ~/.cache/optmpp)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def common(sp: argparse.ArgumentParser, storage_help: str) -> None:
        sp.add_argument("--storage", help=storage_help)
        sp.add_argument("-q", "--quiet", action="store_true", help="no progress output")
        sp.add_argument("--json", action="store_true", help="print the summary as JSON")

    def study_budget(sp: argparse.ArgumentParser) -> None:  # run, check, worker
        sp.add_argument("--n-trials", type=_count, help="finished trials the study should hold in total")
        sp.add_argument("--timeout", type=_seconds, help="stop starting trials after S seconds")

    storage_help = ("storage URL (sqlite:///FILE, postgresql+psycopg://USER@HOST/DB, "
                    "mysql+pymysql://USER@HOST/DB); default: $OPTMPP_STORAGE, the study file, "
                    "sqlite:///runs/optmpp.db")

    r = sub.add_parser("run", help="create or resume a study and run N worker processes on it")
    r.add_argument("study", help="study file (TOML)")
    common(r, storage_help)
    r.add_argument("--workers", type=_count, help="worker processes (default: the study file's)")
    study_budget(r)
    r.add_argument("--threads", type=_count, help="threads per worker (default: cores / workers)")
    r.add_argument("-v", "--verbose", action="store_true", help="print every trial's result")
    r.set_defaults(func=cmd_run)

    ck = sub.add_parser("check", help="check a study file, its data and the storage as `run` would; run nothing")
    ck.add_argument("study", help="study file (TOML)")
    common(ck, storage_help)
    ck.add_argument("--workers", type=_count, help="worker processes `run` would start (default: the study file's)")
    study_budget(ck)
    ck.set_defaults(func=cmd_check)

    w = sub.add_parser("worker", help="join a study as one worker (run it on any machine, any number of times)")
    w.add_argument("study", help="study file (TOML)")
    common(w, storage_help)
    study_budget(w)
    w.add_argument("--threads", type=_count, help="threads of this worker (default: all cores)")
    w.add_argument("-v", "--verbose", action="store_true", help="print every trial's result")
    w.add_argument("--index", type=int, help=argparse.SUPPRESS)
    w.set_defaults(func=cmd_worker)

    b = sub.add_parser("best", help="retrain the best trial, print test metrics, save the model")
    b.add_argument("study", help="study file (TOML)")
    common(b, storage_help)
    b.add_argument("--seeds", type=_count, default=1, help="retrain with this many seeds (mean ± std)")
    b.add_argument("--out", help="model directory (default runs/models/<study>)")
    b.add_argument("--ensemble", action="store_true",
                   help="save the mean of the --seeds models as one model (and report its test metrics)")
    b.add_argument("--splits", type=_count, default=1, metavar="N",
                   help="also retrain the same hyperparameters on N-1 other random splits of the data and report "
                        "the test metrics' median and spread over the N splits (the saved model stays the study's)")
    b.set_defaults(func=cmd_best)

    pr = sub.add_parser("predict", help="predict new inputs with a model saved by `best`")
    pr.add_argument("model_dir", help="a directory written by `optmpp best`")
    pr.add_argument("input", help="CSV with the model's input columns (or SMILES column)")
    pr.add_argument("-o", "--output", help="output CSV (default: standard output)")
    pr.add_argument("--smiles-column", help="name of the SMILES column, if not the training file's")
    pr.add_argument("-q", "--quiet", action="store_true")
    pr.set_defaults(func=cmd_predict)

    pl = sub.add_parser("plots", help="figures of a study: history, learning curves, importances")
    pl.add_argument("study", help="study file (TOML)")
    common(pl, storage_help)
    pl.add_argument("--out", help="output directory (default runs/plots/<study>)")
    pl.set_defaults(func=cmd_plots)

    c = sub.add_parser("compare", help="the paper's comparison: every algorithm, one budget, seeds; table + figures")
    c.add_argument("comparison", help="comparison file (TOML): objective, algorithms, budget, seeds")
    common(c, storage_help)
    c.add_argument("--workers", type=_count, help="worker processes per study (default: the file's)")
    c.add_argument("--seeds", type=_count, help="studies per algorithm (default: the file's)")
    c.add_argument("--threads", type=_count, help="threads per worker (default: cores / workers)")
    c.add_argument("--out", help="output directory (default runs/compare/<name>)")
    c.add_argument("--no-retrain", action="store_true", help="skip retraining the best trials (no test metrics)")
    c.add_argument("--splits", type=_count, metavar="N", help=SPLITS_HELP.replace("default 1", "default: the file's, else 1"))
    c.set_defaults(func=cmd_compare)

    rp = sub.add_parser("report", help="comparison table and figures of existing studies (any storage)")
    rp.add_argument("storage_url", help="storage URL holding the studies")
    rp.add_argument("studies", nargs="+", help="study names; studies of one algorithm are seeds of one row")
    rp.add_argument("--out", help="output directory (default runs/report/<title or first study>)")
    rp.add_argument("--title", help="title of the table and figures")
    rp.add_argument("--no-retrain", action="store_true", help="skip retraining the best trials (no test metrics)")
    rp.add_argument("--splits", type=_count, default=1, metavar="N", help=SPLITS_HELP)
    rp.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    rp.add_argument("--json", action="store_true", help="print the table as JSON")
    rp.set_defaults(func=cmd_report)

    st = sub.add_parser("status", help="studies in a storage: trials by state, best value, workers, epochs")
    st.add_argument("study", nargs="?", help="a study name (default: all studies)")
    st.add_argument("--storage", help=storage_help)
    st.add_argument("--recent", type=_seconds, default=300.0, help="a worker counts as seen within S seconds (300)")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)

    a = sub.add_parser("algorithms", help="list the algorithms (sampler + pruner)")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_algorithms)

    o = sub.add_parser("objectives", help="list the objectives (built-in and plug-ins)")
    o.add_argument("--json", action="store_true")
    o.set_defaults(func=cmd_objectives)

    d = sub.add_parser("dashboard", help="start optuna-dashboard on a storage")
    d.add_argument("--storage", help=storage_help)
    d.add_argument("--port", type=_port, default=8080)
    d.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    d.set_defaults(func=cmd_dashboard)

    data = sub.add_parser("data", help="data sets")
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True
    f = dsub.add_parser("fetch", help="download the paper's data files, verifying their sha256")
    f.add_argument("names", nargs="*", help="file names (default: all)")
    f.add_argument("--base-url", help=argparse.SUPPRESS)
    f.add_argument("-q", "--quiet", action="store_true")
    f.set_defaults(func=cmd_data_fetch)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from optmpp._tables import ConfigError
    from optmpp.data import DataError
    from optmpp.storage import StorageError, redact_text

    args = build_parser().parse_args(argv)
    if args.data_dir:
        os.environ["OPTMPP_DATA_DIR"] = args.data_dir
    url_hint = getattr(args, "storage", None) or getattr(args, "storage_url", None) or os.environ.get("OPTMPP_STORAGE")
    if args.command in ("run", "compare"):
        # SIGTERM stops `run`/`compare` as Ctrl-C does: their workers mark their trials FAIL
        # and exit, none is left running on its own
        def on_term(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, on_term)
    try:
        return int(args.func(args))
    except (ConfigError, DataError) as exc:
        _err(redact_text(str(exc), url_hint))
        return EXIT_BAD_INPUT
    except StorageError as exc:
        _err(redact_text(str(exc), url_hint))
        return EXIT_STORAGE
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED
    except OSError as exc:  # a file that cannot be read or written: an output folder missing, a full disk
        where = f"{exc.filename}: " if exc.filename else ""
        _err(redact_text(f"{where}{exc.strerror or exc}", url_hint))
        return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
