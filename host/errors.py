"""The one error type the CLI catches: every expected failure is an AnneError,
printed as one line (``anne-host: message``) with a non-zero exit code."""


class AnneError(Exception):
    exit_code = 1
