"""Every entry point: --help exits 0 with a short usage, and a bad input is one line and exit 1.

The commands run as users run them (subprocesses from the repository root); the inputs here are
refused before any run is loaded or any data set read, so no trained run is needed.
"""

import os
import pathlib
import subprocess
import sys

import pytest

from lpta import command_line

REPO_ROOT = pathlib.Path(__file__).parent.parent
COMMANDS = {
    'main.py': ['main.py'],
    'lpta.predict': ['-m', 'lpta.predict'],
    'lpta.evaluate': ['-m', 'lpta.evaluate'],
    'lpta.benchmark': ['-m', 'lpta.benchmark'],
    'lpta.import_weights': ['-m', 'lpta.import_weights'],
}
# The flags each command's --help must list.
FLAGS = {
    'main.py': ['--config', '--workdir', '--multiprocess', '--coordinator_address',
                '--num_processes', '--process_id'],
    'lpta.predict': ['--workdir', '--step', '--maps', '--output_dir'],
    'lpta.evaluate': ['--workdir', '--eval', '--step'],
    'lpta.benchmark': ['--config', '--steps', '--against', '--rounds', '--estimate',
                       '--epoch_examples'],
    'lpta.import_weights': ['--format', '--checkpoint', '--workdir', '--placement',
                            '--normalisation'],
}
# The configs that are bases of others, not runs ("Not meant to be run directly").
BASES = ('attention_transfer.py', 'common.py', 'ltpa.py', 'ram.py')


def _command(name, *args, cwd=REPO_ROOT):
  return subprocess.run([sys.executable, *COMMANDS[name], *args], cwd=cwd, capture_output=True,
                        text=True, timeout=300)


def _one_line_error(result) -> str:
  """The single stderr line of a refused command (after checking it is the only one)."""
  assert result.returncode == 1, result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1, result.stderr
  return lines[0]


@pytest.mark.parametrize('name', sorted(COMMANDS))
def test_help_exits_0_with_usage_examples_and_flags(name):
  result = _command(name, '--help')
  assert result.returncode == 0, result.stderr
  text = result.stdout
  assert text.startswith(f'usage: python {" ".join(COMMANDS[name])} ')
  examples = text.split('Examples:\n', 1)[1].split('\n\n', 1)[0].splitlines()
  assert 1 <= len(examples) <= 2
  assert all(line.startswith(f'  python {" ".join(COMMANDS[name])} ') for line in examples)
  listed = [line.split()[0] for line in text.split('Flags:\n', 1)[1].split('\n\n')[0].splitlines()
            if line.startswith('  --')]
  assert listed == FLAGS[name]
  assert 'Try --helpfull' not in text  # absl's own help, which exits 1


def test_main_help_lists_every_runnable_config_with_its_summary_and_no_base():
  result = _command('main.py', '--help')
  assert result.returncode == 0
  text = ' '.join(result.stdout.split())
  configs = result.stdout.split('Configs (', 1)[1]
  names = {line.split()[0] for line in configs.splitlines()[1:] if line.startswith('  ') and
           not line.startswith('   ')}
  expected = {path.name for path in (REPO_ROOT / 'configs').glob('*.py')} - {'__init__.py',
                                                                             *BASES}
  assert names == expected
  assert len(names) >= 30
  assert ('quickstart.py Quickstart: a narrow VGG-att3 on Fashion-MNIST that trains on a laptop '
          'CPU in minutes.') in text
  assert 'Everything happens in lpta.train' not in text  # main.py's docstring, for developers


def test_evaluate_without_eval_is_one_line(tmp_path):
  line = _one_line_error(_command('lpta.evaluate', f'--workdir={tmp_path}'))
  assert line == ('error: give --workdir=<a trained run> and --eval=<evaluator>, e.g. python -m '
                  'lpta.evaluate --workdir=runs/quickstart --eval=fgsm; evaluators: '
                  'complexity, deletion_insertion, explanations, faithfulness_correlation, fgsm, '
                  'localisation, parameter_randomisation, pgd, probe.')


@pytest.mark.parametrize('name, args', [
    ('lpta.predict', ['photo.png']),
    ('lpta.evaluate', ['--eval=fgsm']),
])
def test_a_step_that_is_no_checkpoint_is_one_line(name, args, tmp_path):
  line = _one_line_error(_command(name, f'--workdir={tmp_path}', '--step=foo', *args))
  assert line == ('error: --step=foo is not a checkpoint; use --step=latest, --step=best or a '
                  'step number, e.g. --step=1000.')


def test_a_config_whose_get_config_refuses_its_argument_is_its_message_on_one_line(tmp_path):
  line = _one_line_error(_command('main.py', '--config=configs/canvas_baseline.py:nosuch,cnn',
                                  f'--workdir={tmp_path / "run"}'))
  assert line == ("error: --config=configs/canvas_baseline.py:nosuch,cnn: 'nosuch,cnn' is not "
                  'TASK,MODEL: TASK is one of translated, cluttered and MODEL one of fc64, fc256, '
                  'cnn, context, random_glimpses; e.g. '
                  '--config=configs/canvas_baseline.py:cluttered,cnn.')
  assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('source, message', [
    ('def get_config():\n  raise RuntimeError("no such recipe")\n',
     'RuntimeError in the config file: no such recipe'),
    ('def get_config(:\n  pass\n', 'SyntaxError in the config file: invalid syntax (broken.py, '
     'line 1)'),
])
def test_a_config_file_that_fails_is_named_with_its_exception(tmp_path, source, message):
  config = tmp_path / 'broken.py'
  config.write_text(source)
  line = _one_line_error(_command('main.py', f'--config={config}'))
  assert line == f'error: --config={config}: {message}'


def test_benchmark_config_errors_are_main_py_lines():
  missing = _one_line_error(_command('lpta.benchmark', '--config=missing.py'))
  assert missing == (f'error: --config=missing.py: no such file (looked for from {REPO_ROOT}); '
                     'pass a config file, e.g. --config=configs/quickstart.py.')
  unknown = _one_line_error(_command('lpta.benchmark', '--config=configs/quickstart.py',
                                     '--config.model.widht=2'))
  assert unknown == ('error: --config.model.widht is not a field of the config (did you mean '
                     'width?); check its spelling against the config file (docs/architecture.md '
                     'says where each field is declared).')
  none = _one_line_error(_command('lpta.benchmark', '--steps=3'))
  assert none == ('error: give --config=<a config file>, e.g. python -m lpta.benchmark '
                  '--config=configs/quickstart.py.')


def test_main_without_config_and_with_stray_arguments_is_one_line():
  none = _one_line_error(_command('main.py'))
  assert none == ('error: give --config=<a config file>, e.g. python main.py '
                  '--config=configs/quickstart.py; python main.py --help lists the configs.')
  stray = _one_line_error(_command('lpta.benchmark', '--config=configs/quickstart.py', 'fast'))
  assert stray == ('error: unexpected arguments fast; python -m lpta.benchmark takes only flags '
                   '(--flag=value), listed by python -m lpta.benchmark --help.')


def test_each_canvas_baseline_has_its_own_default_workdir(tmp_path):
  workdir = command_line.default_workdir
  assert workdir('configs/canvas_baseline.py:cluttered,cnn') == os.path.join(
      'runs', 'canvas_baseline_cluttered_cnn')
  assert workdir('configs/canvas_baseline.py:translated,random_glimpses') == os.path.join(
      'runs', 'canvas_baseline_translated_random_glimpses')
  assert workdir('configs/quickstart.py') == os.path.join('runs', 'quickstart')
  assert workdir('configs/x.py:a b/c') == os.path.join('runs', 'x_a_b_c')  # a name, no folders
  # The command uses it: where that workdir is a file, it is refused by that name.
  (tmp_path / 'runs').mkdir()
  (tmp_path / 'runs' / 'canvas_baseline_cluttered_cnn').write_text('')
  result = subprocess.run(
      [sys.executable, str(REPO_ROOT / 'main.py'),
       f'--config={REPO_ROOT / "configs" / "canvas_baseline.py"}:cluttered,cnn'],
      cwd=tmp_path, capture_output=True, text=True, timeout=300)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      'error: --workdir=runs/canvas_baseline_cluttered_cnn cannot be made: '
      f'{tmp_path / "runs" / "canvas_baseline_cluttered_cnn"} is a file, not a folder; choose '
      'another --workdir.')


def test_runnable_configs_need_a_command_section_and_skip_bases(tmp_path):
  (tmp_path / 'run_me.py').write_text('"""A run.\n\nCommands (two):\n  python main.py\n"""\n')
  (tmp_path / 'wrapped.py').write_text('"""A run whose summary\ngoes on.\n\nCommand:\n  x\n"""\n')
  (tmp_path / 'base.py').write_text('"""A base. Not meant to be run directly.\n\nCommand:\n"""\n')
  (tmp_path / 'plain.py').write_text('"""No command here."""\n')
  (tmp_path / 'notes.txt').write_text('Command:\n')
  assert command_line.runnable_configs(str(tmp_path)) == [('run_me.py', 'A run.'),
                                                  ('wrapped.py', 'A run whose summary goes on.')]


def test_checkpoint_step_takes_latest_best_or_a_number():
  assert command_line.checkpoint_step('latest') == 'latest'
  assert command_line.checkpoint_step('best') == 'best'
  assert command_line.checkpoint_step('1200') == 1200
  for bad in ('foo', '-3', '1.5', ''):
    with pytest.raises(SystemExit, match=f'^error: --step={bad} is not a checkpoint; '):
      command_line.checkpoint_step(bad)


def test_table_wraps_the_text_column_and_gives_a_long_name_its_own_line():
  text = command_line.table([('a', 'short'), ('name', 'x ' * 60)], column=8)
  lines = text.splitlines()
  assert lines[0] == '  a     short'
  assert lines[1].startswith('  name  x x') and len(lines[1]) <= 100
  assert all(line.startswith(' ' * 8 + 'x') for line in lines[2:])
  assert sum(line.count('x') for line in lines[1:]) == 60
  long = command_line.table([('--a_very_long_flag', 'help')], column=10)
  assert long.splitlines() == ['  --a_very_long_flag', '          help']
