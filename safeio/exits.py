"""Exit statuses and one-line error reports, the same for every command of the project (run_bench.py,
python -m bench.cli.*, python -m eval, python -m ugatit.*).

A known failure (bench's InputError family, an OSError such as a missing file, a full disk) is one line
on stderr, `error: ...`, naming the file or setting and the fix, and exit status 2; a traceback means a
bug. A bad image names the command's flag that skips such files.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from safeio.images import BadImageError

EXIT_OK = 0
EXIT_RUN_FAILED = 1      # a run failed unexpectedly, or was left untrained
EXIT_BAD_INPUT = 2       # a known failure: bad file, setting, data, weights or download
EXIT_INTERRUPTED = 130   # Ctrl-C


def report_error(error: BaseException, flag: str | None = None) -> int:
    """Print `error` as the one line a user reads; EXIT_BAD_INPUT. `flag`: the command's option that leaves
    unreadable images out, named in a bad image's message."""
    text = error.for_flag(flag) if flag and isinstance(error, BadImageError) else str(error)
    print(f"error: {' '.join(text.splitlines())}", file=sys.stderr)
    return EXIT_BAD_INPUT


def run_translation_command(translate: Callable[[], Path]) -> int:
    """The ending every translate command shares: `translate()` writes the output folder and returns it; a
    known failure is one line (bad images named with --skip-bad-images), Ctrl-C leaves nothing half-written."""
    try:
        output = translate()
    except (OSError, ValueError, RuntimeError, KeyError) as error:   # the InputError family included
        return report_error(error, flag="--skip-bad-images")
    except KeyboardInterrupt:
        print("\ninterrupted: nothing was written to the output folder", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"translations written to {output}")
    return EXIT_OK
