"""Checkpoint bookkeeping: best by validation accuracy (never test), kept across resumes; which
config changes a resumed run may make."""

import importlib
import json
import pathlib
import subprocess
import sys
import types

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from lpta import checkpoints
from lpta import train
from lpta.data import preprocessing
from test_train import tiny_config

TESTS_DIR = pathlib.Path(__file__).parent
REPO_ROOT = TESTS_DIR.parent

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
  return checkpoints.describe_config_change(saved, tiny_config(**overrides),
                                            train.added_values())


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
      json.loads(saved.to_json_best_effort()), tiny_config(), train.added_values()) == (
          "config.data.validation_split is absent in the checkpoint and 0 now")


def test_a_saved_config_without_a_field_added_later_has_its_old_value():
  saved = ml_collections.ConfigDict(tiny_config().to_dict())
  del saved.optimizer['dampening']
  saved_json = json.loads(saved.to_json_best_effort())
  assert checkpoints.describe_config_change(saved_json, tiny_config(), train.added_values()) is None
  assert checkpoints.describe_config_change(
      saved_json, tiny_config(**{'optimizer.dampening': 0.9}), train.added_values()) == (
          'config.optimizer.dampening is 0.0 in the checkpoint and 0.9 now')


# Configs as lpta wrote them before the fields declared as added existed (generated
# from commit 4fa7def's configs/).
SAVED_BEFORE_NEW_FIELDS = json.loads(
    (pathlib.Path(__file__).parent / 'data' / 'configs_before_fine_tuning.json').read_text())


@pytest.mark.parametrize('name', ['quickstart', 'cifar100_att3', 'cifar100_vgg',
                                  'imagenet_resnet18_at', 'fashion_mnist_at'])
def test_runs_saved_before_fields_were_added_still_resume(name):
  config = importlib.import_module(f'configs.{name}').get_config()
  assert checkpoints.describe_config_change(SAVED_BEFORE_NEW_FIELDS[name], config,
                                            train.added_values()) is None


def test_a_real_change_of_default_is_still_refused():
  # RAM's first location became the policy's ('learned') after those runs were saved.
  config = importlib.import_module('configs.translated_fashion_mnist_ram').get_config()
  assert checkpoints.describe_config_change(
      SAVED_BEFORE_NEW_FIELDS['translated_fashion_mnist_ram'], config, train.added_values()) == (
          "config.model.initial_location is 'random' in the checkpoint and 'learned' now")


def test_added_fields_are_declared_with_their_old_value_as_default():
  # Each added field defaults to what runs did before it existed (recipes may set another).
  from lpta import families  # pylint: disable=g-import-not-at-top
  defined = checkpoints._flatten(json.loads(train.default_config().to_json_best_effort()))  # pylint: disable=protected-access
  for name in families.REGISTRY:
    defined.update({f'model.{field}': value
                    for field, value in families.default_config(name).to_dict().items()})
  added = train.added_values()
  assert {field: defined[field] for field in added} == json.loads(json.dumps(added))


def test_a_damaged_latest_checkpoint_costs_one_log_line_and_no_traceback(tmp_path):
  # Every array file of the latest checkpoint cut short: the restore fails on the first array
  # read while TensorStore still reads the others (before the fix, each of those printed a
  # traceback of asyncio's closed event loop).
  config_file = tmp_path / 'tiny.py'
  config_file.write_text(f'import sys\nsys.path.insert(0, {str(TESTS_DIR)!r})\n'
                         'from test_train import tiny_config\n\n\ndef get_config():\n'
                         '  return tiny_config()\n')
  command = [sys.executable, 'main.py', f'--config={config_file}', f'--workdir={tmp_path / "run"}']
  first = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
  assert first.returncode == 0, first.stderr[-3000:]
  arrays = [path for path in (tmp_path / 'run' / 'checkpoints' / '8').rglob('*')
            if path.is_file() and path.parent.name == 'd']
  assert len(arrays) >= 4
  for path in arrays:
    path.write_bytes(path.read_bytes()[:10])

  resumed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  (damaged,) = [line for line in resumed.stderr.splitlines() if 'is damaged' in line]
  assert 'The checkpoint at step 8 is damaged' in damaged and 'tensorstore_spec' not in damaged
  assert 'Traceback' not in resumed.stderr and 'Event loop is closed' not in resumed.stderr
  assert 'Resuming from the checkpoint at step 4' in resumed.stderr
  (moved,) = (tmp_path / 'run' / 'damaged_checkpoints').iterdir()
  assert moved.name.startswith('8-')


def test_a_bucket_without_google_cloud_storage_is_refused_in_one_line(monkeypatch):
  real_find_spec = checkpoints.importlib.util.find_spec
  monkeypatch.setattr(checkpoints.importlib.util, 'find_spec',
                      lambda name: None if name == 'google.cloud.storage' else real_find_spec(name))
  with pytest.raises(checkpoints.ConfigError, match=r'^gs://bucket/run/checkpoints is in a Google '
                     r'Cloud Storage bucket, .*pip install "lpta\[gcs\]"'):
    checkpoints.Checkpointer('gs://bucket/run/checkpoints', read_only=True)
