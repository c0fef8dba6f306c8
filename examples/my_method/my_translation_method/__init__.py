"""An example of a method written outside ugatit-bench: importing this package registers `tinycycle`."""

from my_translation_method import method  # noqa: F401  (registers "tinycycle")
