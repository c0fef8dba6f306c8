#!/usr/bin/env python
"""Entry point: python run_bench.py EXPERIMENT.yaml [--dry-run] [--set key=value ...]

See README.md, or `python run_bench.py --help`. The logic lives in the bench package.
"""

import sys

from bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
