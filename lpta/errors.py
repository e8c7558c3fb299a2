"""Errors a user can fix by changing a config, a path or a command.

`main.py` prints their message on one line and exits with status 1, so every message says what is
wrong and how to fix it. Anything else that goes wrong is a bug and keeps its traceback.
"""


class LptaError(Exception):
  """Base class: a problem with the user's input, not with the code."""


class ConfigError(LptaError):
  """A config value is invalid or inconsistent with the machine (e.g. the device count)."""


class DataError(LptaError):
  """A data set is missing, cannot be prepared offline, or is not what the config expects."""


class CheckpointError(LptaError):
  """A checkpoint is missing, unreadable, or belongs to a different model."""


class TrainingDiverged(LptaError):
  """The training loss became NaN or infinite."""
