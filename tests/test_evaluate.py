"""The evaluation command line and evaluators scheduled during training (config.evals)."""

import json
import pathlib
import subprocess
import sys

import pytest
import tensorflow as tf

from lpta import checkpoints
from lpta import evaluators
from lpta import train
from lpta.errors import ConfigError
from test_train import tiny_config

REPO_ROOT = pathlib.Path(__file__).parent.parent


def _evaluate(*args):
  return subprocess.run([sys.executable, '-m', 'lpta.evaluate', *args], cwd=REPO_ROOT,
                        capture_output=True, text=True, timeout=300)


def _scalar_steps(workdir: pathlib.Path, tag: str) -> list[int]:
  steps = []
  for event_file in workdir.glob('events.out.tfevents.*'):
    for event in tf.compat.v1.train.summary_iterator(str(event_file)):
      steps += [event.step for value in event.summary.value if value.tag == tag]
  return sorted(steps)


def test_command_runs_one_evaluator_with_overrides(finished_run, tmp_path):
  workdir, _, _ = finished_run
  result = _evaluate(f'--workdir={workdir}', '--eval=fgsm', '--eval.max_examples=6',
                     '--eval.epsilons=(0.,0.5)', '--eval.batch_size=4', '--step=best')
  assert result.returncode == 0, result.stderr
  record = json.loads((workdir / 'eval' / 'fgsm' / 'results.json').read_text())
  assert record['config']['max_examples'] == 6 and record['config']['epsilons'] == [0., .5]
  assert set(record['results']) == {'accuracy_eps_0', 'accuracy_eps_0.5'}
  # Six examples: every accuracy is a multiple of 1/6, and the printed line shows it.
  assert round(record['results']['accuracy_eps_0'] * 6, 6).is_integer()
  assert f"accuracy_eps_0.5 {record['results']['accuracy_eps_0.5']:.4f}" in ' '.join(
      result.stdout.split())
  assert record['step'] in _scalar_steps(workdir, 'fgsm/accuracy_eps_0.5')


def test_command_runs_several_evaluators_with_their_own_fields(finished_run):
  workdir, _, _ = finished_run
  result = _evaluate(f'--workdir={workdir}', '--eval=localisation,deletion_insertion',
                     '--eval.localisation.max_examples=5', '--eval.deletion_insertion.steps=4',
                     '--eval.deletion_insertion.max_examples=3')
  assert result.returncode == 0, result.stderr
  localisation = json.loads((workdir / 'eval' / 'localisation' / 'results.json').read_text())
  deletion = json.loads((workdir / 'eval' / 'deletion_insertion' / 'results.json').read_text())
  assert localisation['config']['max_examples'] == 5
  assert deletion['config']['steps'] == 4 and deletion['config']['max_examples'] == 3


@pytest.mark.parametrize('args, message', [
    (['--eval=saliency'], "error: --eval='saliency' is not an evaluator; use one of "),
    (['--eval=fgsm', '--eval.colour=1'],
     'error: --eval.colour is not a field of the fgsm evaluator; its fields are batch_size, '),
    (['--eval=fgsm,pgd', '--eval.pgd.colour=1'], 'error: --eval.pgd.colour is not a field of '),
    (['--eval=fgsm', '--eval.max_examples=0'],
     'error: --eval.max_examples=0 must be a positive integer.'),
])
def test_command_errors_are_one_line(finished_run, args, message):
  workdir, _, _ = finished_run
  result = _evaluate(f'--workdir={workdir}', *args)
  assert result.returncode == 1
  lines = result.stderr.strip().splitlines()
  assert lines[-1].startswith(message), result.stderr
  assert all(not line.startswith('Traceback') for line in lines)


def test_evaluators_scheduled_in_training_run_at_their_epochs_and_at_the_end(tmp_path):
  config = tiny_config(num_epochs=3)
  config.evals.localisation = {'every_epochs': 2, 'max_examples': 4, 'batch_size': 4}
  train.train_and_evaluate(config, tmp_path)
  record = json.loads((tmp_path / 'eval' / 'localisation' / 'results.json').read_text())
  assert record['step'] == 12 and record['config']['max_examples'] == 4
  # Steps 8 (epoch 2) and 12 (the end), 4 steps per epoch.
  assert _scalar_steps(tmp_path, 'localisation/pointing_gradcam') == [8, 12]


def test_scheduled_evaluators_are_validated_before_training():
  config = tiny_config()
  config.evals.fgsm = {'every_epochs': 0}
  with pytest.raises(ConfigError, match=r'config.evals.fgsm.every_epochs=0 must be a positive'):
    train.validate_config(config, 1)
  config.evals.fgsm = {'epsilon': .1}
  with pytest.raises(ConfigError, match=r'config.evals.fgsm.epsilon is not a field'):
    train.validate_config(config, 1)
  with pytest.raises(ConfigError, match='single-process training only'):
    evaluators.scheduled(config.evals, process_count=2)


def test_a_resumed_run_may_change_its_scheduled_evaluators_but_not_its_seed():
  saved = json.loads(tiny_config().to_json_best_effort())
  config = tiny_config()
  config.evals.fgsm = {'every_epochs': 1, 'max_examples': 10}
  assert checkpoints.describe_config_change(saved, config, train.added_values()) is None
  config.seed = 7
  assert checkpoints.describe_config_change(saved, config, train.added_values()) == (
      'config.seed is 0 in the checkpoint and 7 now')
