"""Trains and evaluates an lpta config.

  python main.py --config=configs/quickstart.py [--workdir=runs/quickstart] [--config.a.b=value]

Everything happens in lpta.train.train_and_evaluate; this file only restarts itself under
tcmalloc where that helps (lpta.allocator), parses flags, starts the multi-process runtime when
asked to, quietens library logs and turns user errors into a one-line message
(lpta.command_line); its --help lists the runnable configs, read from their docstrings.
"""

import os
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
                               'resumes. Default: runs/<config file name>, then _<its argument> '
                               'for a config given as FILE:ARGUMENT.')
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
CONFIGS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'configs')


def usage_text() -> str:
  return command_line.usage(
      'python main.py --config=CONFIG [flags] [--config.FIELD=VALUE ...]',
      'Trains a config and evaluates it: checkpoints, TensorBoard events, attention figures and '
      'the final test metrics go to the workdir. Running the same command again resumes from '
      'the last checkpoint. Any field of the config can be overridden with --config.FIELD=VALUE '
      '(docs/architecture.md says where each field is declared).',
      ['python main.py --config=configs/quickstart.py',
       'python main.py --config=configs/cifar100_att3.py --config.num_epochs=10 '
       '--workdir=runs/short'],
      ['config', 'workdir', 'multiprocess', 'coordinator_address', 'num_processes',
       'process_id'],
      "Configs (--config=configs/NAME.py; each file's docstring says what it reproduces):\n"
      + command_line.table(command_line.runnable_configs(CONFIGS_DIR)))


def parse_flags(argv):
  """absl's flag parsing, with the config loaded at once and any failure told in one line."""
  return command_line.parse_flags(
      argv, usage_text(), _CONFIG,
      missing_config='give --config=<a config file>, e.g. python main.py '
      '--config=configs/quickstart.py; python main.py --help lists the configs.')


def main(argv):
  command_line.refuse_arguments(argv, 'python main.py')
  command_line.quiet_library_info()
  if _MULTIPROCESS.value:
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                               num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value)
  logging.info('JAX process %d of %d, devices: %s', jax.process_index(), jax.process_count(),
               jax.devices())
  workdir = _WORKDIR.value or command_line.default_workdir(
      flags.FLAGS['config'].config_filename)
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
