"""How a command stops: a refusal (exit 1) or bad usage/configuration (exit 2), always one line."""

EXIT_REFUSED = 1
EXIT_USAGE = 2
# `drift`: the deployed stack differs from its state (any error is EXIT_REFUSED).
EXIT_DRIFT = 2


class Refused(Exception):
    """A safety rule or a failed step stopped the command: shown as one line, exit status 1."""


class UsageError(Exception):
    """The command line or the configuration is wrong: shown as one line, exit status 2."""
