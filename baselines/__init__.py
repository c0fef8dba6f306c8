"""The paper's other methods, reimplemented natively on this harness so that one experiment file
trains and scores all of them (translations from the authors' own code can be scored as external
results instead). Importing the package registers `cyclegan`, `unit`, `munit`,
`drit`, `aggan` and `cartoongan`, and the loaders of the authors' released CycleGAN, UNIT and MUNIT files."""

from baselines import (  # noqa: F401  (registers the methods); noqa: F401  (registers the loaders of the authors' files)
    aggan, cartoongan, cyclegan, cyclegan_released, drit, munit, released_unit_munit, unit)
