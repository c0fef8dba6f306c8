"""The paper's other methods, reimplemented natively on this harness so that one experiment file
trains and scores all of them (translations from the authors' own code can be scored as external
results instead). Importing the package registers `cyclegan` and `unit`."""

from baselines import cyclegan, unit  # noqa: F401  (registers the methods)
