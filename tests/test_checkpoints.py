"""Checkpoint bookkeeping: best by validation accuracy (never test), kept across resumes; which
config changes a resumed run may make."""

import importlib
import json
import pathlib
import types

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from lpta import checkpoints
from lpta.data import preprocessing
from test_train import tiny_config

DATASET = {'name': 'synthetic', 'image_shape': [2, 2, 1], 'class_names': ['a', 'b']}
NORMALISATION = preprocessing.Normalisation(np.zeros(1, np.float32), np.ones(1, np.float32))


def _state(value: float):
  return types.SimpleNamespace(params={'w': jnp.full(2, value)}, batch_stats={},
                               opt_state={'m': jnp.zeros(2)})


def _save_all(checkpointer, scores):
  """Saves one checkpoint per (step, validation accuracy, test accuracy)."""
  for step, validation, test in scores:
    metrics = {'validation_accuracy': validation, 'test_accuracy': test}
    checkpointer.save(step, _state(step), tiny_config(), DATASET, NORMALISATION, metrics)
  checkpointer.close()


def _steps(directory):
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def test_best_checkpoint_is_chosen_by_validation_never_test_and_survives_resumes(tmp_path):
  directory = tmp_path / 'checkpoints'
  # Step 1 has the best validation accuracy and the worst test accuracy.
  _save_all(checkpoints.Checkpointer(directory, keep_latest=1, keep_best=1),
            [(1, .9, .1), (2, .5, .99), (3, .6, .5)])
  assert _steps(directory) == [1, 3]
  # A resumed run (a new manager on the same folder) still knows that step 1 is the best.
  _save_all(checkpoints.Checkpointer(directory, keep_latest=1, keep_best=1),
            [(4, .4, .9), (5, .3, .8)])
  assert _steps(directory) == [1, 5]
  reader = checkpoints.Checkpointer(directory, read_only=True)
  assert reader.best_step() == reader.resolve_step('best') == 1
  assert reader.resolve_step('latest') == 5
  restored = reader.restore_items(1, {'params': {'w': jnp.zeros(2)}})
  np.testing.assert_array_equal(restored['params']['w'], [1., 1.])


def test_without_a_validation_split_only_the_latest_checkpoints_are_kept(tmp_path):
  directory = tmp_path / 'checkpoints'
  checkpointer = checkpoints.Checkpointer(directory, keep_latest=2, keep_best=0)
  for step in (1, 2, 3):
    checkpointer.save(step, _state(step), tiny_config(), DATASET, NORMALISATION,
                      {'test_accuracy': 1. / step})  # test accuracy ranks nothing
  checkpointer.close()
  assert _steps(directory) == [2, 3]
  reader = checkpoints.Checkpointer(directory, read_only=True)
  assert reader.best_step() is None
  with pytest.raises(checkpoints.CheckpointError, match='no checkpoint ranked by '
                                                        'validation_accuracy'):
    reader.resolve_step('best')
  with pytest.raises(checkpoints.CheckpointError, match=r'no checkpoint for step=7 \(steps: 2, '
                                                        r'3\)'):
    reader.resolve_step(7)


def _changed(**overrides):
  saved = json.loads(tiny_config().to_json_best_effort())
  return checkpoints.describe_config_change(saved, tiny_config(**overrides))


def test_a_resumed_run_may_change_logging_evaluation_and_paths_only():
  assert _changed() is None
  assert _changed(log_every_steps=7, eval_batch_size=64, num_attention_images=0,
                  keep_checkpoints=5, **{'data.data_dir': '/elsewhere',
                                         'teacher.workdir': '/moved'}) is None
  assert _changed(batch_size=32) == 'config.batch_size is 16 in the checkpoint and 32 now'
  assert _changed(**{'data.train_split': 'train[:10]'}) == (
      "config.data.train_split is 'train' in the checkpoint and 'train[:10]' now")
  assert _changed(**{'optimizer.decay_epochs': (1, 2)}).startswith(
      'config.optimizer.decay_epochs is [60, 120, 160] in the checkpoint')


def test_a_field_missing_from_the_saved_config_counts_as_a_change():
  saved = ml_collections.ConfigDict(tiny_config().to_dict())
  del saved.data['validation_split']
  assert checkpoints.describe_config_change(
      json.loads(saved.to_json_best_effort()), tiny_config()) == (
          "config.data.validation_split is absent in the checkpoint and 0 now")


def test_a_saved_config_without_a_field_added_later_has_its_old_value():
  saved = ml_collections.ConfigDict(tiny_config().to_dict())
  del saved.optimizer['dampening']
  saved_json = json.loads(saved.to_json_best_effort())
  assert checkpoints.describe_config_change(saved_json, tiny_config()) is None
  assert checkpoints.describe_config_change(
      saved_json, tiny_config(**{'optimizer.dampening': 0.9})) == (
          'config.optimizer.dampening is 0.0 in the checkpoint and 0.9 now')


# Configs as lpta wrote them before the fields of checkpoints.ADDED_FIELDS existed (generated
# from commit 4fa7def's configs/).
SAVED_BEFORE_NEW_FIELDS = json.loads(
    (pathlib.Path(__file__).parent / 'data' / 'configs_before_fine_tuning.json').read_text())


@pytest.mark.parametrize('name', ['quickstart', 'cifar100_att3', 'cifar100_vgg',
                                  'imagenet_resnet18_at', 'fashion_mnist_at'])
def test_runs_saved_before_fields_were_added_still_resume(name):
  config = importlib.import_module(f'configs.{name}').get_config()
  assert checkpoints.describe_config_change(SAVED_BEFORE_NEW_FIELDS[name], config) is None


def test_a_real_change_of_default_is_still_refused():
  # RAM's first location became the policy's ('learned') after those runs were saved.
  config = importlib.import_module('configs.translated_fashion_mnist_ram').get_config()
  assert checkpoints.describe_config_change(
      SAVED_BEFORE_NEW_FIELDS['translated_fashion_mnist_ram'], config) == (
          "config.model.initial_location is 'random' in the checkpoint and 'learned' now")


def test_added_fields_have_the_defaults_of_the_configs_that_define_them():
  from configs import common, imagenet_resnet, ltpa, ram  # pylint: disable=g-import-not-at-top
  defined = {}
  for config in (common.get_config(), ltpa.get_config(), imagenet_resnet.get_config(),
                 ram.get_config()):
    defined.update(checkpoints._flatten(json.loads(config.to_json_best_effort())))  # pylint: disable=protected-access
  assert {field: defined[field] for field in checkpoints.ADDED_FIELDS} == checkpoints.ADDED_FIELDS
