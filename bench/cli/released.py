"""What a model file of the authors' code holds: `python -m bench.cli.released inspect FILE` names the
method, the format and the architecture inferred from its tensors (bench/core/released.py)."""

from __future__ import annotations

import argparse
import sys

from bench.core.released import inspect_file
from safeio.exits import EXIT_OK, report_error
from safeio.files import InputError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cli.released", description="Inspect a model file of the authors' code.")
    parser.add_argument("command", choices=["inspect"])
    parser.add_argument("file")
    args = parser.parse_args(argv)
    try:
        report = inspect_file(args.file)
    except InputError as error:
        return report_error(error)
    for key, value in report.items():
        print(f"{key}: {value}")
    if report.get("running_statistics"):
        print("note: old layout with instance-norm running statistics; loading drops them and normalises each image "
              "by its own statistics, as the authors' current code does")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
