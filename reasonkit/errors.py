"""The one exception type the CLI turns into a clear one-line message and a non-zero exit."""


class ReasonkitError(Exception):
    """A user-facing error: bad input, bad config, unknown plugin. Its message is one line that names the
    file/key/name at fault and what was expected. The CLI prints it without a traceback and exits with 2."""

    exit_code = 2


class ConfigError(ReasonkitError):
    """A config file or `--set` override that does not validate."""


class PluginError(ReasonkitError):
    """Plugin discovery or lookup failed (unknown name, duplicate name, broken plugin)."""


class DataError(ReasonkitError):
    """Input data is missing or malformed."""


class FinishedWithErrors(ReasonkitError):
    """The run finished and its results are written, but some questions are error records (a missing or broken
    clip): exit 3, so scripts notice."""

    exit_code = 3


class UploadFailed(ReasonkitError):
    """Training finished and everything is saved locally, but an HF/S3 upload failed: exit 4."""

    exit_code = 4
