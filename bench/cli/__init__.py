"""The command lines: run_bench.py (`main`, in run.py), `python -m bench.cli.translate` (a folder of images
with any model file) and `python -m bench.cli.released inspect FILE` (what an authors' file holds)."""

from bench.cli.run import main  # noqa: F401  (run_bench.py and the `ugatit-bench` script call bench.cli.main)
