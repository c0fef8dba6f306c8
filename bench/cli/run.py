"""The command line behind run_bench.py (the logic lives in bench/harness/: runner.py, which runs
plan.py, execute.py and report.py; and in bench/data/download.py)."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from bench.core import methods as method_registry
from bench.core.config import DATA_ROOT_ENV
from bench.data.datasets import CATALOGUE
from bench.data.download import download_by_name
from bench.harness.experiment_file import load_experiment
from safeio.exits import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_RUN_FAILED, report_error
from safeio.files import DiskFullError, InputError


def exit_status(reports) -> int:
    """0 when every run succeeded (or runs elsewhere); 2 when every failure was a known one (a bad file,
    image or setting, said in one line: safeio.files.InputError); 1 for any other failure or a run
    left untrained (--eval-only)."""
    from bench.harness.jobs import DONE, FAILED, RUNNING_ELSEWHERE

    problems = [r for r in reports if r.status not in (DONE, RUNNING_ELSEWHERE)]
    if not problems:
        return EXIT_OK
    return EXIT_BAD_INPUT if all(r.status == FAILED and r.known for r in problems) else EXIT_RUN_FAILED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_bench.py",
        description="Train, translate and score unpaired image-to-image translation models from an experiment file.",
        epilog="Examples:\n"
               "  python run_bench.py experiments/smoke.yaml\n"
               "  python run_bench.py experiments/ablation.yaml --dry-run --set train.iterations=200\n"
               "  python run_bench.py experiments/main.yaml --launcher slurm --set launcher.slurm.partition=gpu\n"
               "  python run_bench.py experiments/main.yaml --status\n"
               "  python run_bench.py --download horse2zebra --data-root data\n"
               "  python run_bench.py --list methods",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("experiment", nargs="?", help="experiment YAML file (see experiments/)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting of the experiment, e.g. --set train.iterations=200 (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved plan and exit without training")
    parser.add_argument("--only", metavar="PATTERN",
                        help="run only the runs whose variant, method, dataset, task or folder matches (e.g. 'w/ LN', 'selfie*')")
    parser.add_argument("--eval-only", action="store_true", help="train nothing: translate and score existing checkpoints")
    parser.add_argument("--tables-only", action="store_true", help="only regenerate the tables and figures from the records")
    parser.add_argument("--no-reuse", action="store_true",
                        help="train a run again even when another output folder holds the same finished run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--status", action="store_true",
                        help="show where every run stands (from the records alone: nothing is trained) and exit")

    launch = parser.add_argument_group("launching (also the experiment's launcher: section; README: Running on a cluster)")
    launch.add_argument("--launcher", choices=["local", "slurm"], help="local: on this machine (default); slurm: one job per run")
    launch.add_argument("--jobs", metavar="N", help="local worker processes, or 'auto' (one per GPU, else per core)")
    launch.add_argument("--threads", type=int, metavar="N", help="torch threads per worker (default: the cores shared among them)")
    launch.add_argument("--wait", action="store_true", help="slurm: wait for the jobs, then write the tables")

    downloads = parser.add_argument_group("datasets")
    downloads.add_argument("--download", metavar="NAME", help=f"download and install a dataset: {', '.join(n for n, i in CATALOGUE.items() if not i.synthetic)}")
    downloads.add_argument("--data-root", metavar="DIR", help=f"where datasets live (default: ${DATA_ROOT_ENV} or ./data)")
    downloads.add_argument("--archive", metavar="FILE", help="install from an archive already on disk instead of downloading")
    downloads.add_argument("--force", action="store_true", help="replace an installed copy of the dataset")
    downloads.add_argument("--max-unpacked-gb", type=float, metavar="GB",
                           help="the most the archive may unpack to (default: what the dataset can plausibly hold)")
    swap = downloads.add_mutually_exclusive_group()
    swap.add_argument("--swap", dest="swap", action="store_const", const=True, help="exchange the archive's A and B")
    swap.add_argument("--no-swap", dest="swap", action="store_const", const=False, help="keep the archive's A and B as they are")
    parser.add_argument("--list", choices=["methods", "datasets"],
                        help="list registered methods (and where each comes from; with an experiment file, its imports: "
                             "too) or known datasets")
    return parser


def _list(kind: str) -> None:
    if kind == "methods":
        for name, origin in method_registry.registered_methods(with_origins=True).items():
            cls = method_registry.method_class(name)
            print(f"{name:12s} {f'{cls.__module__}.{cls.__qualname__}':50s} {origin}")
        for name, label in method_registry.PLANNED_METHODS.items():
            print(f"{name:12s} ({label}: planned, not implemented yet)")
    else:
        for name, info in CATALOGUE.items():
            kind_text = "synthetic, generated on demand" if info.synthetic else f"{len(info.sources)} download source(s)"
            print(f"{name:15s} {info.task_name('a2b'):18s} {info.task_name('b2a'):18s} {kind_text}")


def _run_on_slurm(plan, args) -> int:
    """Submit the runs as a job array; with --wait, wait for them and write the tables."""
    from bench.harness import slurm
    from bench.harness.runner import check_inputs, format_reports, write_results_locked
    from bench.harness.status import is_complete, score_settings_key
    from eval.tables import summary

    check_inputs(plan, progress=not args.no_progress)
    key = score_settings_key(plan)
    submission = slurm.submit(plan, eval_only=args.eval_only, is_complete=lambda training: is_complete(training, key))
    for job, reason in submission.skipped:
        print(f"not submitted: {job.training.variant} on {job.training.dataset.name}, seed {job.training.seed}: {reason}")
    if submission.jobs:
        print(slurm.describe_resources(plan.experiment, len(submission.jobs)))
        ids = ", ".join(str(job.job_id) for job in submission.jobs)
        print(f"submitted {len(submission.jobs)} job(s): {ids}", flush=True)
    source = shlex.join(["python", "run_bench.py", plan.experiment.source, *[f"--set={o}" for o in plan.overrides]])
    if not args.wait:
        print(f"Where they stand: {source} --status\nTables once they have finished: {source} --tables-only")
        return EXIT_OK
    reports = slurm.wait(submission, progress=not args.no_progress)
    write_results_locked(plan, progress=not args.no_progress)
    if reports:
        print(format_reports(reports, plan))
    print(summary(plan.results_dir, plan.experiment.tables))
    return exit_status(reports)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.list:
            if args.experiment:   # with the methods its `imports:` bring in
                load_experiment(args.experiment, args.overrides)
            _list(args.list)
            return EXIT_OK
        if args.download:
            from bench.core.config import DataConfig

            root = Path(args.data_root) if args.data_root else DataConfig().resolved_root()
            limit = int(args.max_unpacked_gb * 2**30) if args.max_unpacked_gb else None
            report = download_by_name(args.download, root, archive=Path(args.archive) if args.archive else None,
                                      force=args.force, swap=args.swap, progress=not args.no_progress,
                                      max_unpacked_bytes=limit)
            print(report.summary())
            return EXIT_OK
        if not args.experiment:
            build_parser().print_usage(sys.stderr)
            print("run_bench.py: error: give an experiment file, --download NAME or --list", file=sys.stderr)
            return EXIT_BAD_INPUT

        from bench.harness.estimate import format_launch
        from bench.harness.plan import format_plan, plan_experiment
        from bench.harness.runner import format_reports, run_plan, write_results_locked
        from eval.tables import summary

        launch_overrides = [f"launcher.{key}={value}" for key, value in
                            (("name", args.launcher), ("jobs", args.jobs), ("threads", args.threads)) if value is not None]
        experiment = load_experiment(args.experiment, args.overrides + launch_overrides)
        plan = plan_experiment(experiment, args.only, tuple(args.overrides), reuse=not args.no_reuse)
        if not plan.selected and plan.trainings:
            print(f"error: --only {args.only!r} matches no run of {args.experiment}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if args.status:
            from bench.harness.status import format_status

            print(format_status(plan))
            return EXIT_OK
        if args.dry_run:
            print(format_plan(plan))
            print(format_launch(plan))
            if experiment.launcher.name == "slurm" and experiment.launcher.slurm.executor == "slurm":
                from bench.harness.slurm_cluster import check_request

                print(f"Slurm: {check_request(experiment.launcher.slurm)}")   # a request no node can meet: one line, 2
            return EXIT_BAD_INPUT if plan.data_problems else EXIT_OK
        if args.tables_only:
            write_results_locked(plan, progress=not args.no_progress)
            print(summary(plan.results_dir, experiment.tables))
            return EXIT_OK
        print(format_plan(plan), flush=True)
        if experiment.launcher.name == "slurm":
            return _run_on_slurm(plan, args)
        reports = run_plan(plan, progress=not args.no_progress, eval_only=args.eval_only)
        print(format_reports(reports, plan))
        print(summary(plan.results_dir, experiment.tables))
        return exit_status(reports)
    except (InputError, DiskFullError) as error:   # says what and how to fix it: one line
        return report_error(error)
    except KeyboardInterrupt:
        print("\ninterrupted: finished work is kept (each run at its last checkpoint, every "
              "train.checkpoint_every iterations); run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
