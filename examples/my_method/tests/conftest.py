import my_translation_method  # noqa: F401  (registers "tinycycle" when the package is not installed)
