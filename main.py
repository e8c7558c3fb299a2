"""Trains and evaluates an lpta config.

  python main.py --config=configs/quickstart.py [--workdir=runs/quickstart] [--config.a.b=value]

Everything happens in lpta.train.train_and_evaluate; this file only parses flags, starts the
multi-process runtime when asked to, quietens library logs and turns user errors into a one-line
message.
"""

import logging as python_logging
import os
import sys

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from lpta import train
from lpta.errors import LptaError

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file (configs/*.py).',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None,
                               'Where checkpoints, TensorBoard events and figures go (a path or '
                               'a URL such as gs://bucket/run); rerunning on the same workdir '
                               'resumes. Default: runs/<config file name>.')
_MULTIPROCESS = flags.DEFINE_bool('multiprocess', False,
                                  'Call jax.distributed.initialize() first (TPU pods, multi-host '
                                  'GPU clusters); every process runs the same command.')
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', None, 'With --multiprocess: host:port of process 0, where the '
    'processes meet. Unset: detected (Cloud TPU, SLURM, ...).')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None,
                                      'With --multiprocess: how many processes. Unset: detected.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None,
                                   'With --multiprocess: this process\'s index. Unset: detected.')
flags.mark_flags_as_required(['config'])


# Libraries whose INFO lines (several per checkpoint for Orbax) stay out of the log; their
# warnings and errors are kept.
QUIET_LIBRARIES = ('/orbax/', '/jax/_src/')


def drop_library_info(record: python_logging.LogRecord) -> bool:
  """A logging filter: False for an INFO (or lower) record from one of QUIET_LIBRARIES."""
  return (record.levelno >= python_logging.WARNING
          or not any(library in record.pathname for library in QUIET_LIBRARIES))


def default_workdir(config_path: str) -> str:
  return os.path.join('runs', os.path.splitext(os.path.basename(config_path.split(':')[0]))[0])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  logging.get_absl_handler().addFilter(drop_library_info)
  if _MULTIPROCESS.value:
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                               num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value)
  logging.info('JAX process %d of %d, devices: %s', jax.process_index(), jax.process_count(),
               jax.devices())
  workdir = _WORKDIR.value or default_workdir(flags.FLAGS['config'].config_filename)
  try:
    train.train_and_evaluate(_CONFIG.value, workdir)
  except LptaError as error:
    sys.exit(f'error: {error}')
  except KeyboardInterrupt:
    print(f'Interrupted. Run the same command again to resume from the last checkpoint in '
          f'{workdir}.', file=sys.stderr)
    sys.exit(130)


if __name__ == '__main__':
  app.run(main)
