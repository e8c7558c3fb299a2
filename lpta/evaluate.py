"""Evaluates a trained run: attacks, localisation and faithfulness of its maps, feature probes.

  python -m lpta.evaluate --workdir=runs/quickstart --eval=fgsm [--eval.FIELD=VALUE ...]
  python -m lpta.evaluate --workdir=W --eval=fgsm,localisation --eval.fgsm.max_examples=500

Each evaluator (lpta/evaluators/, `--eval` lists them) writes `results.json`, its plots and CSV
files under `<workdir>/eval/<name>/`, adds its scalars to the run's TensorBoard events, and prints
its results. The run is loaded with lpta.load_run at `--step`; it is never retrained.
"""

import sys

from absl import app
from absl import flags
from clu import metric_writers
import jax
from ml_collections import config_flags

from lpta import command_line
from lpta import evaluators
from lpta import runs
from lpta.errors import LptaError
from lpta.evaluators import config as evaluator_config

_WORKDIR = flags.DEFINE_string('workdir', None, 'Workdir of a trained lpta run.')
_STEP = flags.DEFINE_string('step', 'latest', command_line.STEP_HELP)
_EVAL = config_flags.DEFINE_config_file(
    'eval', None, f'Evaluators to run, comma-separated: {", ".join(sorted(evaluators.REGISTRY))}.')
_GIVE_RUN_AND_EVAL = ('give --workdir=<a trained run> and --eval=<evaluator>, e.g. python -m '
                      'lpta.evaluate --workdir=runs/quickstart --eval=fgsm; evaluators: '
                      f'{", ".join(sorted(evaluators.REGISTRY))}.')
USAGE = command_line.usage(
    'python -m lpta.evaluate --workdir=RUN --eval=NAME[,NAME ...] [flags] [--eval.FIELD=VALUE ...]',
    'Evaluates a trained run without retraining it: adversarial attacks, localisation and '
    'faithfulness of its maps, feature probes. Each evaluator writes results.json, plots and CSV '
    'files under <workdir>/eval/<name>/, adds its scalars to the run\'s TensorBoard events and '
    'prints its results. With one evaluator its fields are --eval.FIELD=VALUE, with several '
    '--eval.NAME.FIELD=VALUE; a wrong field is refused with the list of its fields.',
    ['python -m lpta.evaluate --workdir=runs/quickstart --eval=fgsm --eval.max_examples=500',
     'python -m lpta.evaluate --workdir=runs/quickstart --eval=localisation,deletion_insertion '
     '--step=best'],
    ['workdir', 'eval', 'step'])


def expand_arguments(argv: list[str]) -> list[str]:
  """`--eval=NAMES` -> `--eval=<lpta/evaluators/config.py>:NAMES`, and with one evaluator
  `--eval.FIELD=...` -> `--eval.NAME.FIELD=...`."""
  names = next((arg.split('=', 1)[1] for arg in argv if arg.startswith('--eval=')), None)
  if names is None or ':' in names:
    return argv
  single = names if ',' not in names else None
  expanded = []
  for arg in argv:
    if arg.startswith('--eval='):
      arg = f'--eval={evaluator_config.__file__}:{names}'
    elif single and arg.startswith('--eval.') and not arg.startswith(f'--eval.{single}.'):
      arg = f'--eval.{single}.{arg[len("--eval."):]}'
    expanded.append(arg)
  return expanded


def parse_flags(argv):
  command_line.exit_if_help(argv, USAGE)
  argv = expand_arguments(argv)
  sys.argv = argv  # config_flags reads the --eval.* overrides from sys.argv
  try:
    remaining = flags.FLAGS(argv)
    if _EVAL.value is None:
      sys.exit(f'error: {_GIVE_RUN_AND_EVAL}')
    _EVAL.value.to_dict()  # a config that failed to load raises only when used
  except flags.Error as error:
    sys.exit(f'error: {command_line.first_line(error)}')
  except (LptaError, AttributeError, KeyError, ValueError, TypeError) as error:
    sys.exit(f'error: {unknown_field_message(argv) or command_line.first_line(error)}')
  return remaining


def unknown_field_message(argv: list[str]) -> str | None:
  """What is wrong with the first `--eval.NAME.FIELD=...` of `argv` whose evaluator has no such
  field (or that names no evaluator given to --eval), or None."""
  given = next((arg.split('=', 1)[1] for arg in argv if arg.startswith('--eval=')), None)
  if given is None:
    return None
  names = given.split(':', 1)[-1].split(',')
  for arg in argv:
    if not arg.startswith('--eval.'):
      continue
    name, _, field = arg[len('--eval.'):].split('=', 1)[0].partition('.')
    if name not in names:
      return f'--eval.{name} names no evaluator of --eval={",".join(names)}.'
    fields = evaluators.get_class(name).default_config()
    if field.split('.')[0] not in fields:
      shown = field if len(names) == 1 else f'{name}.{field}'
      return (f'--eval.{shown} is not a field of the {name} evaluator; its fields are '
              f'{", ".join(sorted(fields))}.')
  return None


def main(argv):
  command_line.refuse_arguments(argv, 'python -m lpta.evaluate')
  command_line.quiet_library_info()
  if not _WORKDIR.value or _EVAL.value is None:
    sys.exit(f'error: {_GIVE_RUN_AND_EVAL}')
  step = command_line.checkpoint_step(_STEP.value)
  try:
    run = runs.load_run(_WORKDIR.value, step)
    print(f'{run.description()}.')
    writer = metric_writers.create_default_writer(run.workdir, just_logging=jax.process_index() > 0)
    for name, config in _EVAL.value.items():
      results = evaluators.evaluate_run(run, name, config, writer)
      folder = evaluators.get_class(name)(config).output_name
      print(f'{name} (written to {run.workdir}/eval/{folder}/):')
      for key, value in results.items():
        print(f'  {key:<40} {value:.4f}')
    writer.close()
  except LptaError as error:
    sys.exit(f'error: {error}')


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
