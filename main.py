"""Trains and evaluates an lpta config.

  python main.py --config=configs/quickstart.py [--workdir=runs/quickstart] [--config.a.b=value]

Everything happens in lpta.train.train_and_evaluate; this file only parses flags, starts the
multi-process runtime when asked to, quietens library logs and turns user errors into a one-line
message.
"""

import pathlib
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
                               'Where checkpoints, TensorBoard events and figures go; rerunning '
                               'on the same workdir resumes. Default: runs/<config file name>.')
_MULTIPROCESS = flags.DEFINE_bool('multiprocess', False,
                                  'Call jax.distributed.initialize() first (TPU pods, multi-host '
                                  'GPU clusters); every process runs the same command.')
flags.mark_flags_as_required(['config'])


def _drop_library_info(record) -> bool:
  """Keeps Orbax's warnings and errors but not its several INFO lines per checkpoint."""
  return record.levelno >= logging.WARNING or '/orbax/' not in record.pathname


def default_workdir(config_path: str) -> pathlib.Path:
  return pathlib.Path('runs') / pathlib.Path(config_path.split(':')[0]).stem


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  logging.get_absl_handler().addFilter(_drop_library_info)
  if _MULTIPROCESS.value:
    jax.distributed.initialize()
  logging.info('JAX process %d of %d, devices: %s', jax.process_index(), jax.process_count(),
               jax.devices())
  workdir = _WORKDIR.value or default_workdir(flags.FLAGS['config'].config_filename)
  try:
    train.train_and_evaluate(_CONFIG.value, workdir)
  except LptaError as error:
    sys.exit(f'error: {error}')


if __name__ == '__main__':
  app.run(main)
