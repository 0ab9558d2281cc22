"""`voxgan-search`: run a study, watch it in Optuna Dashboard, export the best config, plot a report.

    voxgan-search [--study default] [--trials N] [--out DIR] [--resume] ...   run (or resume) a study
    voxgan-search dashboard [--out DIR]                                      Optuna Dashboard on it
    voxgan-search export --out best.yaml [--run DIR]                          best config + checkpoint
    voxgan-search report [--run DIR] [--out DIR]                              PNG plots

User errors print one line `error: ...` and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from voxgan_search.study.spec import load_study
from voxgan.cli import Parser, run_cli

SUBCOMMANDS = ("run", "dashboard", "export", "report")
DEFAULT_RUNS = Path("runs")


def run_parser() -> Parser:
    p = Parser(prog="voxgan-search", description="Run a hyperparameter study of the 3D-GAN: Optuna samples, "
               "Ray Tune schedules, everything lands in an Optuna storage. Other commands: "
               "dashboard, export, report (see `voxgan-search COMMAND --help`).")
    p.add_argument("--study", default="default", help="study YAML file, or the name of a shipped one in studies/ (default: default)")
    p.add_argument("--trials", type=int, default=None, help="number of trials in the study, the tutorial baseline included (default 20)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/<study name>)")
    p.add_argument("--storage", default=None, help="Optuna storage URL (default sqlite:///<out>/study.db), e.g. postgresql://...")
    p.add_argument("--storage-path", default=None, metavar="FOLDER_OR_URI",
                   help="where trials write checkpoints (Ray Tune's storage path): a folder every node mounts at "
                        "the same path (NFS) or a URI such as s3://bucket/prefix (default <out>/ray: one machine)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted study in --out until it has --trials trials")
    p.add_argument("--max-concurrent", type=int, default=None, help="trials running at once (default: as many as the resources allow)")
    p.add_argument("--cpus-per-trial", type=float, default=None, help="CPUs of one trial (default from the study)")
    p.add_argument("--gpus-per-trial", type=float, default=None, help="GPUs of one trial; fractions pack trials on a GPU (default from the study)")
    p.add_argument("--address", default=None, help="join an existing Ray cluster (e.g. auto or ray://host:10001)")
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="start no new trial this long after the first; running trials finish, `--resume` runs the rest")
    p.add_argument("--kimg-budget", type=float, default=None, metavar="KIMG",
                   help="start no new trial once the search's trials have trained this many kimg in all (compares "
                        "strategies at equal compute); `--resume` runs the rest")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a study key, e.g. --set budget.kimg=40 (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no live progress, only the summary")
    return p


def run_command(argv: list[str]) -> int:
    from voxgan_search.records.summary import format_summary, next_steps
    from voxgan_search.runner import SearchSettings, run_search

    args = run_parser().parse_args(argv)
    spec = load_study(args.study, args.overrides)
    settings = SearchSettings.from_args(args, spec)
    summary = run_search(spec, settings)
    if settings.storage is None:
        (settings.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(format_summary(summary))
    if not settings.quiet:
        print("\n".join(next_steps(summary, str(settings.out))), file=sys.stderr)
    if all_failed(summary["trials"]):
        print(f"error: every trial of study '{summary['study']}' failed (see 'failed:' above, and each trial's "
              "fail_reason)", file=sys.stderr)
        return 1
    return 0


def all_failed(counts: dict[str, int]) -> bool:
    """Whether a study's trials have all ended, every one FAILed: the run found nothing."""
    return counts.get("FAIL", 0) > 0 and set(counts) == {"FAIL"}


def _study_source(p: Parser) -> None:
    p.add_argument("--run", type=Path, default=None, help="the search's output folder (default runs/default)")
    p.add_argument("--storage", default=None, help="Optuna storage URL instead of --run")
    p.add_argument("--study-name", default=None, help="study name in the storage (default: the only one)")


def _open_study(args: argparse.Namespace):
    from voxgan_search.coordination.storage import open_existing_study

    run_dir = args.run or DEFAULT_RUNS / "default"
    return open_existing_study(args.storage, run_dir, args.study_name)


def dashboard_command(argv: list[str]) -> int:
    p = Parser(prog="voxgan-search dashboard", description="Serve Optuna Dashboard on a study's storage, "
               "with each trial's rendered samples as artifacts.")
    _study_source(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080)
    args = p.parse_args(argv)
    from voxgan_search.coordination.storage import artifact_store_for, connect, storage_url

    run_dir = args.run or DEFAULT_RUNS / "default"
    storage = connect(storage_url(args.storage, run_dir, must_exist=True))  # a bad URL: one line, exit 2
    import optuna_dashboard

    print(f"Optuna Dashboard on http://{args.host}:{args.port} (Ctrl-C stops it)", file=sys.stderr)
    optuna_dashboard.run_server(storage, host=args.host, port=args.port, artifact_store=artifact_store_for(run_dir))
    return 0


def export_command(argv: list[str]) -> int:
    p = Parser(prog="voxgan-search export", description="Write the best trial's complete training config "
               "(retrain with `voxgan-train --config FILE`) and copy its checkpoint beside it as FILE.pt "
               "(sample with `voxgan-generate --checkpoint FILE.pt`).")
    _study_source(p)
    p.add_argument("--out", type=Path, default=Path("best.yaml"), help="config file to write (default best.yaml)")
    p.add_argument("--trial", type=int, default=None, metavar="N",
                   help="export trial N instead of the confirmed pick (0: the tutorial baseline)")
    args = p.parse_args(argv)
    from voxgan_search.records.export import export_best
    from voxgan_search.records.trial_record import CHECKPOINT_ATTR, CONFIRM_SEED_ATTR, CONFIRMS_ATTR

    trial, config_path, checkpoint_path = export_best(_open_study(args), args.out, args.trial)
    what = (f" (the confirmed pick: trial {trial.user_attrs[CONFIRMS_ATTR]} retrained with seed "
            f"{trial.user_attrs[CONFIRM_SEED_ATTR]})" if CONFIRMS_ATTR in trial.user_attrs and args.trial is None else "")
    print(f"trial {trial.number}{what} (values {trial.values}) -> {config_path}" + (f", {checkpoint_path}" if checkpoint_path else ""))
    if checkpoint_path is None and trial.user_attrs.get(CHECKPOINT_ATTR):
        print(f"note: trial {trial.number}'s checkpoint was deleted (only the best keep_checkpoints finished trials "
              "keep theirs): retrain it from the config", file=sys.stderr)
    return 0


def report_command(argv: list[str]) -> int:
    p = Parser(prog="voxgan-search report", description="Plot a study: optimisation history, parameter "
               "importances, Pareto front (several objectives), learning curves of the best trials.")
    _study_source(p)
    p.add_argument("--out", type=Path, default=None, help="folder for the PNG files (default <run>/report)")
    args = p.parse_args(argv)
    from voxgan_search.records.report import explain, write_report

    out = args.out or (args.run or DEFAULT_RUNS / "default") / "report"
    study = _open_study(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written = write_report(study, out)
    for line in explain(caught):
        print(line, file=sys.stderr)
    for path in written:
        print(path)
    return 0


def dispatch(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and argv[0] in SUBCOMMANDS else "run"
    return {"run": run_command, "dashboard": dashboard_command, "export": export_command, "report": report_command}[command](argv)


def main() -> None:
    import optuna
    from optuna.exceptions import ExperimentalWarning

    # Optuna marks long-standing APIs (metric names, plots, TPE's `group`) experimental and warns on
    # every use: noise in a terminal, not something a user can act on.
    warnings.filterwarnings("ignore", category=ExperimentalWarning)
    # Its "study created / using an existing study" lines repeat what the progress line says.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sys.exit(run_cli(dispatch))


if __name__ == "__main__":
    main()
