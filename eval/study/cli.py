"""python -m eval study build --experiment FILE [--methods LABEL,...] [--per-task N] [--seed S] [--catch K] --out STUDY.db
python -m eval study serve STUDY.db [--host 127.0.0.1] [--port 8000]
python -m eval study table STUDY.db [--out DIR] [--max-catch-failures N]
"""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path

from eval.study.store import StudyError, StudyStore
from safeio.exits import EXIT_INTERRUPTED, report_error
from safeio.files import InputError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval study", description="The paper's user study (Table 2).")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="make a study database from an experiment's translations")
    build.add_argument("--experiment", required=True, help="experiment YAML whose runs have translated their test sets")
    build.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="the experiment's --set overrides, as given to run_bench.py")
    build.add_argument("--methods", help="comma-separated labels as in the tables (default: the paper's five that are present)")
    build.add_argument("--per-task", type=int, default=20, help="source images per task (seeded choice)")
    build.add_argument("--catch", type=int, default=2, help="catch trials per task (untouched sources and one real target image)")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--out", required=True, help="the study database to write (SQLite)")
    serve = commands.add_parser("serve", help="serve a study to participants")
    serve.add_argument("database")
    serve.add_argument("--host", default="127.0.0.1", help="127.0.0.1 (default): this machine only; 0.0.0.0: the lab network")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--threads", type=int, default=8, help="requests served at once")
    table = commands.add_parser("table", help="aggregate the votes into table2.csv and table2.md")
    table.add_argument("database")
    table.add_argument("--out", help="folder for the tables (default: beside the database)")
    table.add_argument("--max-catch-failures", type=int, default=0, help="catch trials a participant may fail and stay counted")
    table.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    return parser


def _serve(args) -> int:
    try:
        import waitress
    except ImportError:
        raise StudyError('serving needs the study extra: pip install -e ".[study]"') from None
    from eval.study.app import create_app

    store = StudyStore(args.database)
    secret = secrets.token_urlsafe(16)
    app = create_app(store, secret)
    host = "localhost" if args.host in ("127.0.0.1", "localhost") else args.host
    print(f"Participants: http://{host}:{args.port}/", flush=True)
    # The secret travels in a header, never in a URL (shell history, proxy logs): a ready command to copy.
    print(f"Admin export (keep the secret): curl -H \"X-Admin-Secret: {secret}\" -o votes.csv "
          f"http://{host}:{args.port}/admin/votes.csv", flush=True)
    print(f"{len(store.trials())} trials; Ctrl-C stops the server (votes are saved as they come)", flush=True)
    waitress.serve(app, host=args.host, port=args.port, threads=args.threads, _quiet=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "build":
            from eval.study.build import build_study, tasks_from_experiment

            methods = [m.strip() for m in args.methods.split(",")] if args.methods else None
            tasks = tasks_from_experiment(args.experiment, methods, tuple(args.overrides))
            store = build_study(tasks, Path(args.out), args.per_task, args.seed, args.catch, source=str(args.experiment))
            trials = store.trials()
            print(f"wrote {args.out}: {len(trials)} trials ({sum(t.kind == 'catch' for t in trials)} catch) over "
                  f"{len(tasks)} task(s) ({', '.join(t.task for t in tasks)}), candidates: {', '.join(store.meta('methods'))}")
            for problem in store.meta("problems"):
                print(f"note: {problem}")
            return 0
        if args.command == "serve":
            return _serve(args)
        from eval.study.aggregate import write_table2

        store = StudyStore(args.database)
        out = Path(args.out) if args.out else Path(args.database).resolve().parent
        for path in write_table2(store, out, args.max_catch_failures, args.seed):
            print(f"wrote {path}")
        print((out / "table2.md").read_text())
        return 0
    except InputError as error:   # StudyError, ConfigError, ...: one line
        return report_error(error)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
