"""The paper's other methods, reimplemented natively on this harness so that one experiment file
trains and scores all of them (translations from the authors' own code can be scored as external
results instead). Importing the package registers `cyclegan`, `unit`, `munit`,
`drit`, `aggan` and `cartoongan`."""

from baselines import aggan, cartoongan, cyclegan, drit, munit, unit  # noqa: F401  (registers the methods)
