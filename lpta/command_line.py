"""What the command-line programs (main.py, lpta.predict, lpta.benchmark) share: a quiet log."""

import logging as python_logging

from absl import logging

# Libraries whose INFO lines (several per checkpoint for Orbax, several per data set read for
# TFDS) stay out of the log; their warnings and errors are kept.
QUIET_LIBRARIES = ('/orbax/', '/jax/_src/', '/tensorflow_datasets/')
# Library warnings that only restate what lpta asked for: Orbax warns whenever a checkpoint
# directory is opened read-only, as load_run and the resume check do on purpose.
EXPECTED_WARNINGS = ('Given directory is read only',)


def drop_library_info(record: python_logging.LogRecord) -> bool:
  """A logging filter: False for an INFO (or lower) record from one of QUIET_LIBRARIES, and
  for a warning that starts with one of EXPECTED_WARNINGS."""
  if record.getMessage().startswith(EXPECTED_WARNINGS):
    return False
  return (record.levelno >= python_logging.WARNING
          or not any(library in record.pathname for library in QUIET_LIBRARIES))


def quiet_library_info() -> None:
  """Drops the INFO lines of QUIET_LIBRARIES from absl's log (call it in main)."""
  logging.get_absl_handler().addFilter(drop_library_info)
