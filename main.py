"""Trains and evaluates an lpta config.

  python main.py --config=configs/quickstart.py [--workdir=runs/quickstart] [--config.a.b=value]

Everything happens in lpta.train.train_and_evaluate; this file only restarts itself under
tcmalloc where that helps (lpta.allocator), parses flags, starts the multi-process runtime when
asked to, quietens library logs and turns user errors into a one-line message.
"""

import os
import re
import sys

if __name__ == '__main__':
  from lpta import allocator  # pylint: disable=g-import-not-at-top
  allocator.restart_with_tcmalloc()  # before JAX allocates anything

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from lpta import command_line
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


def default_workdir(config_path: str) -> str:
  return os.path.join('runs', os.path.splitext(os.path.basename(config_path.split(':')[0]))[0])


def _config_error(error: Exception, argv) -> str:
  """One line on why --config or a --config.* override could not be applied."""
  path = next((arg.split('=', 1)[1] for arg in argv if arg.startswith('--config=')), '')
  path = path.split(':')[0]
  if path and not os.path.isfile(path):
    return (f'--config={path}: no such file (looked for from {os.getcwd()}); pass a config '
            'file, e.g. --config=configs/quickstart.py.')
  text = str(error)
  overrides = [arg.split('=', 1)[0] for arg in argv if arg.startswith('--config.')]
  culprit = next((arg for arg in overrides
                  if any(re.search(rf'\b{re.escape(part)}\b', text)
                         for part in arg.split('.')[1:])), None)
  if isinstance(error, (AttributeError, KeyError)) and culprit:
    suggestion = re.search(r'Did you mean "(\w+)"', text)
    hint = f' (did you mean {suggestion.group(1)}?)' if suggestion else ''
    return (f'{culprit} is not a field of the config{hint}; check its spelling against the '
            'config file (configs/common.py documents the fields every run has).')
  first_line = (str(error).strip().splitlines() or [''])[0]
  return f'cannot apply the config flags ({type(error).__name__}: {first_line}).'


def parse_flags(argv):
  """absl's flag parsing, with the config loaded at once and any failure told in one line."""
  try:
    remaining = flags.FLAGS(argv)
    _CONFIG.value.get('seed')  # a config file that failed to load raises only when used
  except flags.Error as error:
    sys.exit(f'error: {error}')
  except Exception as error:  # pylint: disable=broad-except
    sys.exit(f'error: {_config_error(error, argv)}')
  return remaining


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  command_line.quiet_library_info()
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
  app.run(main, flags_parser=parse_flags)
