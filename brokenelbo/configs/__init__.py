"""The packaged gin configs (`*.gin`): the base setting, the 12 families and the profiles.

A package, so that gin finds them wherever a command runs: `--gin_file=configs/---.gin`
resolves here when no such file is in the working directory (`utils.cli.resolve_gin_file`),
and an `include 'brokenelbo/configs/base.gin'` resolves through gin's reader of files in
installed packages.
"""
