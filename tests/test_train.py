"""The train loop: artefacts on disk, exact resume, 1 vs 4 devices, metrics, config errors."""

import json
import pathlib

import jax
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from configs import default
from lpta import input_pipeline
from lpta import models
from lpta import objectives
from lpta import train
from lpta.errors import CheckpointError, ConfigError

STEPS_PER_EPOCH = 4  # 64 synthetic training images, batches of 16


def tiny_config(**overrides):
  """A narrow VGG-att3 on 16×16 synthetic images: 2 epochs of 4 steps."""
  config = default.get_config()
  config.data.name = 'synthetic'
  config.data.synthetic_image_shape = (16, 16, 3)
  config.data.synthetic_num_classes = 4
  config.data.synthetic_num_train = 64
  config.data.synthetic_num_test = 22  # not a multiple of the eval batch: the last one is padded
  config.model.width = 1 / 16
  config.optimizer.schedule = 'cosine'
  config.optimizer.learning_rate = 0.05
  config.batch_size = 16
  config.eval_batch_size = 8
  config.num_epochs = 2
  config.log_every_steps = 2
  config.num_attention_images = 2
  config.update_from_flattened_dict(overrides)
  return config


def _tree_equal(first, second):
  return all(jax.tree.leaves(jax.tree.map(lambda a, b: np.array_equal(a, b), first, second)))


def _event_tags(workdir: pathlib.Path) -> set[str]:
  tags = set()
  for event_file in workdir.glob('events.out.tfevents.*'):
    for event in tf.compat.v1.train.summary_iterator(str(event_file)):
      tags.update(value.tag for value in event.summary.value)
  return tags


def test_training_writes_checkpoints_events_figures_and_config(tmp_path):
  config = tiny_config()
  state, test_metrics = train.train_and_evaluate(config, tmp_path)
  assert int(state.step) == 2 * STEPS_PER_EPOCH
  assert sorted(int(p.name) for p in (tmp_path / 'checkpoints').iterdir()) == [4, 8]
  assert json.loads((tmp_path / 'config.json').read_text()) == json.loads(
      config.to_json_best_effort())
  assert {'train_loss', 'train_accuracy', 'learning_rate', 'steps_per_sec', 'test_loss',
          'test_accuracy', 'test_top5_accuracy', 'attention_maps'} <= _event_tags(tmp_path)
  figures = sorted((tmp_path / 'attention').glob('*.png'))
  assert [f.name for f in figures] == ['step_00000004.png', 'step_00000008.png']
  from PIL import Image  # pylint: disable=g-import-not-at-top
  # 2 images × (3 levels + original), tiles of 16 px enlarged to 96.
  assert Image.open(figures[0]).size == (4 * 96, 2 * 96)
  assert 0. <= test_metrics['test_accuracy'] <= test_metrics['test_top5_accuracy'] <= 1.


def test_test_metrics_count_every_example_once(tmp_path):
  config = tiny_config(num_epochs=1)
  state, test_metrics = train.train_and_evaluate(config, tmp_path)
  dataset = input_pipeline.load(config.data)
  normalisation = train.Normalisation(dataset.mean, dataset.std, dataset.zca_matrix)
  logits, _ = jax.jit(train.predict)(state, dataset.test_images, normalisation)
  labels = dataset.test_labels
  assert len(labels) == 22
  np.testing.assert_allclose(test_metrics['test_accuracy'],
                             np.mean(np.argmax(logits, -1) == labels), rtol=1e-6)
  np.testing.assert_allclose(test_metrics['test_loss'],
                             np.mean(objectives.cross_entropy(logits, labels)), rtol=1e-5)


def test_interrupted_and_resumed_run_equals_uninterrupted_run(tmp_path, monkeypatch):
  config = tiny_config()
  uninterrupted, _ = train.train_and_evaluate(config, tmp_path / 'uninterrupted')

  original_batches = input_pipeline.train_batches

  def interrupted_batches(*args, **kwargs):
    for index, batch in enumerate(original_batches(*args, **kwargs)):
      if index == 6:  # mid-way through the second epoch
        raise KeyboardInterrupt
      yield batch

  monkeypatch.setattr(input_pipeline, 'train_batches', interrupted_batches)
  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(config, tmp_path / 'resumed')
  assert sorted(int(p.name) for p in (tmp_path / 'resumed' / 'checkpoints').iterdir()) == [4, 6]
  monkeypatch.setattr(input_pipeline, 'train_batches', original_batches)

  resumed, _ = train.train_and_evaluate(config, tmp_path / 'resumed')
  assert int(resumed.step) == int(uninterrupted.step) == 8
  assert _tree_equal(resumed.params, uninterrupted.params)
  assert _tree_equal(resumed.batch_stats, uninterrupted.batch_stats)
  assert _tree_equal(resumed.opt_state, uninterrupted.opt_state)


def _run_train_steps(config, devices, num_steps):
  """Runs the jitted train step directly; returns (state, metrics, trainer)."""
  mesh = train.make_mesh(devices)
  dataset = input_pipeline.load(config.data)
  state = train.create_train_state(
      jax.random.key(0), models.create_model(config.model, dataset.num_classes),
      train.create_optimizer(config.optimizer, 0.05), dataset.image_shape, mesh)
  trainer = train.Trainer(config, mesh, objectives.Objective(config.transfer, num_steps))
  normalisation = jax.device_put(train.Normalisation(dataset.mean, dataset.std, None),
                                 train.replicated(mesh))
  train_metrics = jax.device_put(train.TrainMetrics.empty(), train.replicated(mesh))
  rng = jax.device_put(jax.random.key(1), train.replicated(mesh))
  batches = input_pipeline.train_batches(dataset.train_images, dataset.train_labels,
                                         config.batch_size, config.seed)
  for _ in range(num_steps):
    state, train_metrics = trainer.train_step(state, train_metrics,
                                              trainer.to_global(next(batches)), normalisation,
                                              rng, None)
  return state, train_metrics, trainer


def test_one_and_four_devices_give_the_same_step():
  assert jax.device_count() == 4
  config = tiny_config()
  one, one_metrics, _ = _run_train_steps(config, jax.devices()[:1], num_steps=1)
  four, four_metrics, _ = _run_train_steps(config, jax.devices(), num_steps=1)
  # Global BatchNorm and the same dropout masks: only summation order differs. (Per-device
  # BatchNorm statistics over 4 examples would change the loss in the second decimal.)
  np.testing.assert_allclose(one_metrics.compute()['loss'], four_metrics.compute()['loss'],
                             rtol=1e-5)
  for tree_one, tree_four in ((one.params, four.params), (one.batch_stats, four.batch_stats)):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 tree_one, tree_four)
  assert len(four.params['classifier']['kernel'].sharding.device_set) == 4


def test_train_step_compiles_once():
  _, train_metrics, trainer = _run_train_steps(tiny_config(), jax.devices(), num_steps=3)
  assert trainer.train_step._cache_size() == 1  # pylint: disable=protected-access
  assert int(train_metrics.loss.count) == 3


def test_training_on_tfds_mock_data(tmp_path):
  config = tiny_config(**{'data.name': 'cifar10', 'num_epochs': 1})
  with tfds.testing.mock_data(num_examples=48):
    state, test_metrics = train.train_and_evaluate(config, tmp_path)
  assert int(state.step) == 48 // 16
  assert state.params['classifier']['kernel'].shape[-1] == 10
  assert np.isfinite(test_metrics['test_loss'])
  assert (tmp_path / 'attention' / 'step_00000003.png').exists()


def test_resuming_with_a_different_model_is_refused_and_changes_nothing(tmp_path):
  train.train_and_evaluate(tiny_config(num_epochs=1), tmp_path)
  before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob('*') if p.is_file()}
  with pytest.raises(CheckpointError, match='config.model.width'):
    train.train_and_evaluate(tiny_config(**{'model.width': 1 / 8}), tmp_path)
  after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob('*') if p.is_file()}
  assert after == before


def test_step_and_multistep_schedules():
  config = default.get_config().optimizer
  step = train.learning_rate_schedule(config, steps_per_epoch=10, num_epochs=300)
  assert [float(step(s)) for s in (0, 249, 250, 499, 500)] == pytest.approx(
      [.1, .1, .05, .05, .025])
  config.schedule, config.decay_factor = 'multistep', .2
  multistep = train.learning_rate_schedule(config, steps_per_epoch=10, num_epochs=200)
  assert [float(multistep(s)) for s in (599, 600, 1200, 1600)] == pytest.approx(
      [.1, .02, .004, .0008])


@pytest.mark.parametrize('overrides, message', [
    ({'batch_size': 18}, 'config.batch_size=18 is not divisible by the 4 devices'),
    ({'eval_batch_size': 0}, 'config.eval_batch_size=0 must be a positive integer'),
    ({'optimizer.schedule': 'linear'}, "config.optimizer.schedule='linear' is not a schedule"),
    ({'optimizer.learning_rate': -0.1}, 'config.optimizer.learning_rate=-0.1 must be positive'),
    ({'model.head': 'sum'}, "config.model.head='sum' is not valid"),
    ({'data.name': 'imagenet'}, 'imagenet'),
])
def test_bad_config_values_are_refused_before_training(tmp_path, overrides, message):
  with pytest.raises(ConfigError, match=message):
    train.train_and_evaluate(tiny_config(**overrides), tmp_path)
  assert not (tmp_path / 'checkpoints').exists()
