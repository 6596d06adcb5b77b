"""The one base of the errors a user can act on (a bad photo, model, archive, setting or
download): the command line turns these, and only these, into one sentence and exit code 2;
anything else is a bug and keeps its traceback."""


class UserError(Exception):
    """Something the user gave, or the machine lacks, stops the work; the message says what."""


class ConfigError(UserError, ValueError):
    """A setting out of its range, or settings that cannot work together."""


class CheckpointError(UserError, ValueError):
    """A model or checkpoint that is missing, damaged, does not fit its config, or would run
    code when loaded (kept here, beside the others, so that torch-free code can raise it)."""
