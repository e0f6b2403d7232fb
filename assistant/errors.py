"""Domain errors: each carries a one-line message for users and a documented exit code.

The CLI turns them into `error: <message>` on stderr and the exit code; the TUI into a
notification. Nothing here knows about either.
"""

from __future__ import annotations


class AssistantError(Exception):
    """An expected failure with a message a user can act on."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(AssistantError):
    """A setting, config file or environment variable is invalid."""

    exit_code = 3


class InputError(AssistantError):
    """Something the user passed in is malformed: an import file, an empty message."""

    exit_code = 4


class ModelError(AssistantError):
    """The model or adapter cannot be resolved or loaded."""

    exit_code = 5


class ServerError(ModelError):
    """The model server cannot be reached, timed out, answered with an HTTP error or broke off a reply."""

    exit_code = 13


class StoreError(AssistantError):
    """The data dir or database cannot be used: unwritable, unreadable, corrupt, busy."""

    exit_code = 6


class NotFoundError(AssistantError):
    """A conversation or message id that does not exist."""

    exit_code = 7


class DatasetError(AssistantError):
    """The curated data cannot make a dataset: too many examples over the length limit, no tokenizer."""

    exit_code = 8


class NotAllowedError(AssistantError):
    """The user may not do this: curating when the config names other curators."""

    exit_code = 9


class ConflictError(InputError):
    """Someone else changed it first: the active adapter version changed while a retrain was gating."""


class TrainingError(AssistantError):
    """Retrain cannot run or did not finish: a preflight check failed, a non-finite loss, no checkpoint to resume."""

    exit_code = 10


class DiskFullError(AssistantError):
    """No space left on the device a file or the database is written to; what was there is kept."""

    exit_code = 14


class BusyError(AssistantError):
    """Another `assistant retrain` holds the data dir's training lock."""

    exit_code = 11


class GateRejected(AssistantError):
    """The new adapter did not beat the active one at the eval gate; it was kept as a candidate or rejected."""

    exit_code = 12


EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "other error (the message says what)",
    2: "usage error: unknown command or option, missing argument",
    ConfigError.exit_code: "invalid configuration (config file, ASSISTANT_* variable, flag)",
    InputError.exit_code: "invalid input (malformed import file, empty or over-long message, text that is not UTF-8, a number out of range)",
    ModelError.exit_code: "model or adapter cannot be found or loaded",
    StoreError.exit_code: "data dir or database unusable (unwritable, corrupt, locked)",
    NotFoundError.exit_code: "no such conversation, message or dataset snapshot",
    DatasetError.exit_code: "the dataset cannot be built (too many over-long examples, no tokenizer)",
    NotAllowedError.exit_code: "not allowed: only the configured curators may curate",
    TrainingError.exit_code: "retrain failed: a preflight check, a non-finite loss, nothing to resume",
    BusyError.exit_code: "another `assistant retrain` is running",
    GateRejected.exit_code: "the new adapter did not pass the eval gate (or the model server refused it) and was not promoted",
    ServerError.exit_code: "the model server cannot be reached, timed out, answered with an error or broke off the reply",
    DiskFullError.exit_code: "no space left on the device (the previous file, if any, is kept)",
    130: "interrupted (ctrl+c)",
}
