"""The paper's Table 2: a human preference study, built from translations, served in a browser, and
aggregated into a table. `python -m eval study build|serve|table` (eval/study/cli.py)."""
