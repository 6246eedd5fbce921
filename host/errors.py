"""The one error type the CLI catches: every expected failure is an AnneError,
printed as one line (``anne-host: message``) with a non-zero exit code."""


class AnneError(Exception):
    exit_code = 1


class UsageError(AnneError):
    """Arguments that cannot work together, or with what the board holds (exit code 2, as argparse's)."""

    exit_code = 2


class DeployError(AnneError):
    """mpy-cross or mpremote could not do their part of installing the firmware."""

    exit_code = 6
