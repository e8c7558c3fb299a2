"""The train loop: artefacts on disk, exact resume, metrics, and a loop that cannot fool its user
(refused resumes, divergence, damaged checkpoints, Ctrl-C inside the step, config errors)."""

import json
import logging
import os
import pathlib
import shutil
import signal

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from configs import ltpa
import lpta
from lpta import checkpoints
from lpta import objectives
from lpta import optimizers
from lpta import sharding
from lpta import train
from lpta.errors import CheckpointError, ConfigError, TrainingDiverged

STEPS_PER_EPOCH = 4  # 64 synthetic training images, batches of 16


def tiny_config(**overrides):
  """A narrow VGG-att3 on 16×16 synthetic images: 2 epochs of 4 steps."""
  config = ltpa.get_config()
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


def constant_rate_optimizer(config, learning_rate):
  """config's optimiser at a constant learning rate."""
  optimizer_config = ml_collections.ConfigDict(config.optimizer.to_dict())
  optimizer_config.update(schedule='constant', learning_rate=learning_rate)
  return optimizers.create_optimizer(optimizer_config, steps_per_epoch=1, num_epochs=1)


def tree_equal(first, second):
  return all(jax.tree.leaves(jax.tree.map(lambda a, b: np.array_equal(a, b), first, second)))


def event_tags(workdir: pathlib.Path) -> set[str]:
  tags = set()
  for event_file in workdir.glob('events.out.tfevents.*'):
    for event in tf.compat.v1.train.summary_iterator(str(event_file)):
      tags.update(value.tag for value in event.summary.value)
  return tags


def checkpoint_steps(workdir: pathlib.Path) -> list[int]:
  return sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit())


def file_times(directory: pathlib.Path) -> dict[pathlib.Path, int]:
  return {p: p.stat().st_mtime_ns for p in directory.rglob('*') if p.is_file()}


def test_training_writes_checkpoints_events_figures_and_config(finished_run):
  workdir, state, metrics = finished_run
  assert int(state.step) == 2 * STEPS_PER_EPOCH
  assert checkpoint_steps(workdir) == [4, 8]
  saved = json.loads((workdir / 'config.json').read_text())
  assert saved['data']['validation_split'] == 16
  assert {'train_loss', 'train_accuracy', 'learning_rate', 'steps_per_sec', 'validation_loss',
          'validation_accuracy', 'test_loss', 'test_accuracy', 'test_top5_accuracy',
          'attention_maps'} <= event_tags(workdir)
  figures = sorted((workdir / 'attention').glob('*.png'))
  assert [f.name for f in figures] == ['step_00000004.png', 'step_00000008.png']
  from PIL import Image  # pylint: disable=g-import-not-at-top
  # 2 images × (3 levels + original), tiles of 16 px enlarged to 96.
  assert Image.open(figures[0]).size == (4 * 96, 2 * 96)
  assert 0. <= metrics['test_accuracy'] <= metrics['test_top5_accuracy'] <= 1.
  # Every evaluation's metrics, readable without TensorBoard; the last ones are those returned.
  recorded = json.loads((workdir / 'metrics.json').read_text())
  assert sorted(recorded, key=int) == ['4', '8'] and recorded['8'] == pytest.approx(metrics)


def test_best_checkpoint_is_ranked_by_validation_accuracy_never_test(finished_run, monkeypatch):
  workdir, _, metrics = finished_run
  reader = checkpoints.Checkpointer(workdir / 'checkpoints', read_only=True)
  saved = {step: reader._manager.metrics(step) for step in (4, 8)}  # pylint: disable=protected-access
  assert saved[8] == pytest.approx(metrics)
  # The highest validation accuracy, the later step on a tie (as Orbax's BestN keeps it).
  best = max((4, 8), key=lambda s: (saved[s]['validation_accuracy'], s))
  assert reader.best_step() == best
  # Ranking reads validation_accuracy alone: swapping the test accuracies changes nothing.
  swapped = {4: {**saved[4], 'test_accuracy': saved[8]['test_accuracy']},
             8: {**saved[8], 'test_accuracy': saved[4]['test_accuracy']}}
  monkeypatch.setattr(reader._manager, 'metrics', swapped.get)  # pylint: disable=protected-access
  assert reader.best_step() == best
  reader.close()


def test_test_metrics_count_every_example_once_and_match_load_run(finished_run):
  workdir, _, metrics = finished_run
  run = lpta.load_run(workdir)
  from lpta import data  # pylint: disable=g-import-not-at-top
  dataset = data.get(run.config.data).load()
  test = dataset.shards['test']
  assert len(test['label']) == 22
  logits, _ = run.predict(test['image'])
  np.testing.assert_allclose(metrics['test_accuracy'],
                             np.mean(np.argmax(logits, -1) == test['label']), rtol=1e-6)
  np.testing.assert_allclose(metrics['test_loss'],
                             np.mean(objectives.cross_entropy(logits, test['label'])), rtol=1e-5)


def _interrupt_during_step(monkeypatch, at_call: int):
  """Makes the train step deliver SIGINT to this process while the `at_call`-th step runs (after
  its asynchronous dispatch, before it returns to the loop)."""
  original_init = train.Trainer.__init__
  calls = []

  def init(self, *args, **kwargs):
    original_init(self, *args, **kwargs)
    step = self.train_step

    def step_then_interrupt(*step_args):
      outputs = step(*step_args)
      calls.append(1)
      if len(calls) == at_call:
        os.kill(os.getpid(), signal.SIGINT)
      return outputs

    self.train_step = step_then_interrupt

  monkeypatch.setattr(train.Trainer, '__init__', init)


def test_sigint_during_a_step_saves_that_step_and_resuming_equals_an_uninterrupted_run(
    tmp_path, monkeypatch):
  config = tiny_config()
  uninterrupted, _ = train.train_and_evaluate(config, tmp_path / 'uninterrupted')
  _interrupt_during_step(monkeypatch, at_call=6)  # mid-way through the second epoch
  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(config, tmp_path / 'resumed')
  assert checkpoint_steps(tmp_path / 'resumed') == [4, 6]
  monkeypatch.undo()
  resumed, _ = train.train_and_evaluate(config, tmp_path / 'resumed')
  assert int(resumed.step) == int(uninterrupted.step) == 8
  assert tree_equal(resumed.params, uninterrupted.params)
  assert tree_equal(resumed.batch_stats, uninterrupted.batch_stats)
  assert tree_equal(resumed.opt_state, uninterrupted.opt_state)


def _truncate_largest_array_file(step_dir: pathlib.Path):
  files = [p for p in (step_dir / 'params').rglob('*') if p.is_file() and '/d/' in str(p)]
  largest = max(files, key=lambda p: p.stat().st_size)
  largest.write_bytes(largest.read_bytes()[:largest.stat().st_size // 2])


def test_a_damaged_latest_checkpoint_is_set_aside_and_the_run_resumes_from_the_previous(
    tmp_path, caplog):
  config = tiny_config()
  finished, _ = train.train_and_evaluate(config, tmp_path / 'run')
  _truncate_largest_array_file(tmp_path / 'run' / 'checkpoints' / '8')
  caplog.set_level(logging.INFO)
  resumed, _ = train.train_and_evaluate(config, tmp_path / 'run')
  assert 'The checkpoint at step 8 is damaged' in caplog.text
  assert 'Resuming from the checkpoint at step 4' in caplog.text
  (moved,) = (tmp_path / 'run' / 'damaged_checkpoints').iterdir()
  assert moved.name.startswith('8-')
  assert checkpoint_steps(tmp_path / 'run') == [4, 8]
  assert tree_equal(resumed.params, finished.params)  # steps 5-8 retrained exactly


def test_no_intact_checkpoint_refuses_to_resume_and_changes_nothing(tmp_path):
  config = tiny_config()
  train.train_and_evaluate(config, tmp_path / 'run')
  for step in (4, 8):
    _truncate_largest_array_file(tmp_path / 'run' / 'checkpoints' / str(step))
  before = file_times(tmp_path / 'run')
  with pytest.raises(CheckpointError, match=r'none of the checkpoints .* \(steps 4, 8\) can be'):
    train.train_and_evaluate(config, tmp_path / 'run')
  assert file_times(tmp_path / 'run') == before


class _DivergingCrossEntropy(objectives.CrossEntropy):
  """Cross-entropy that becomes NaN from step 5 on (a run that diverges in its second epoch)."""

  def __call__(self, student, targets):
    loss, terms = super().__call__(student, targets)
    return jnp.where(student.step >= 5, jnp.nan, loss), terms


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path,
                                                                            monkeypatch):
  monkeypatch.setitem(objectives.REGISTRY, 'none', _DivergingCrossEntropy)
  with pytest.raises(TrainingDiverged, match='the training loss is nan at step 6') as raised:
    train.train_and_evaluate(tiny_config(), tmp_path)
  assert 'kept its latest checkpoint (step 4)' in str(raised.value)
  assert '\n' not in str(raised.value)
  assert checkpoint_steps(tmp_path) == [4]
  run = lpta.load_run(tmp_path)
  assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(run.variables))


def test_resuming_with_another_batch_size_is_refused_and_changes_nothing(finished_run):
  workdir, _, _ = finished_run
  before = file_times(workdir)
  config = tiny_config(**{'data.validation_split': 16, 'data.synthetic_num_train': 80,
                          'batch_size': 8})
  with pytest.raises(CheckpointError, match='config.batch_size is 16 in the checkpoint and 8 '
                                            'now'):
    train.train_and_evaluate(config, workdir)
  assert file_times(workdir) == before


@pytest.mark.parametrize('field, value', [('seed', 3), ('num_epochs', 3),
                                          ('optimizer.schedule', 'constant'),
                                          ('data.validation_split', 8),
                                          ('model.width', 1 / 8)])
def test_resuming_with_another_schedule_data_order_or_model_is_refused(finished_run, field,
                                                                      value):
  workdir, _, _ = finished_run
  config = tiny_config(**{'data.validation_split': 16, 'data.synthetic_num_train': 80,
                          field: value})
  with pytest.raises(CheckpointError, match=f'config.{field} is .* in the checkpoint and'):
    train.train_and_evaluate(config, workdir)


def test_resuming_may_change_how_the_run_is_logged_and_evaluated(finished_run, tmp_path):
  workdir, state, _ = finished_run
  workdir = shutil.copytree(workdir, tmp_path / 'run')
  config = tiny_config(**{'data.validation_split': 16, 'data.synthetic_num_train': 80,
                          'log_every_steps': 1, 'eval_batch_size': 4})
  resumed, _ = train.train_and_evaluate(config, workdir)
  assert int(resumed.step) == int(state.step)  # nothing left to train
  assert json.loads((workdir / 'config.json').read_text())['eval_batch_size'] == 4


def _train_steps(config, devices, num_steps, dtype=jnp.float32):
  """`num_steps` jitted train steps on `devices`, every array in `dtype`: (state, metrics)."""
  mesh = sharding.make_mesh(devices)
  family, source = train.validate_config(config, len(devices))
  dataset = source.load()
  model = family.build(source.num_classes, dtype)
  state = train.create_train_state(jax.random.key(0), model,
                                   constant_rate_optimizer(config, 0.05),
                                   source.image_shape, mesh, family)
  state = jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x,
                       state)
  objective = family.objective(config, model, source.image_shape)
  trainer = train.Trainer(family, source, objective, num_steps, mesh)
  normalisation = sharding.replicate(jax.tree.map(lambda x: x.astype(dtype),
                                                  dataset.statistics), mesh)
  metrics = sharding.replicate(train.TrainMetrics.empty(), mesh)
  rng = sharding.replicate(jax.random.key(1), mesh)
  batches = dataset.train_batches(config.batch_size, config.seed)
  for _ in range(num_steps):
    state, metrics = trainer.train_step(state, metrics, trainer.to_global(next(batches)),
                                        normalisation, rng, None)
  return state, metrics


def _assert_trees_close(first, second, **tolerances):
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **tolerances), first, second)


# How far 1 device and 4 devices may differ. Sharding changes the per-device shapes, so XLA's
# convolutions and BatchNorm's cross-device sums round differently: each layer of the tiny
# attention VGG (18 of them) adds a few float32 ulps, about 2e-7 relative, so its forward pass
# (the loss, the BatchNorm statistics) agrees to well within 1e-5. Gradients do not: a ReLU input
# within rounding of zero (or a max-pool tie) falls on one side on 1 device and on the other on
# 4, and moves a gradient by up to 1e-2 whichever way the sums are ordered. Which steps do so
# depends on the CPU, so float32 steps are compared through their forward pass only, and whole
# training runs in float64, where an input would have to lie within ~1e-14 of a kink.

def test_one_and_four_devices_compute_the_same_forward_pass_in_float32():
  config = tiny_config()
  one, one_metrics = _train_steps(config, jax.devices()[:1], num_steps=1)
  four, four_metrics = _train_steps(config, jax.devices(), num_steps=1)
  # Global BatchNorm and the same dropout masks: only summation order differs. (Per-device
  # BatchNorm statistics over 4 examples would change the loss in the second decimal.)
  np.testing.assert_allclose(one_metrics.compute()['loss'], four_metrics.compute()['loss'],
                             rtol=1e-5)
  _assert_trees_close(one.batch_stats, four.batch_stats, rtol=1e-5, atol=1e-6)
  assert len(four.params['classifier']['kernel'].sharding.device_set) == 4


def test_one_and_four_devices_train_the_same_on_real_data_in_float64(tmp_path):
  """Four steps of 16 on Fashion-MNIST (the Debian package, prepared offline into tmp_path).

  Float64 convolutions are slow on the CPU (seconds per step here), hence few small steps; 4
  examples per device still make every BatchNorm statistic a cross-device sum.
  """
  config = tiny_config(**{'data.name': 'fashion_mnist', 'data.data_dir': str(tmp_path),
                          'data.train_split': 'train[:64]', 'data.random_crop_padding': 2,
                          'batch_size': 16})
  with jax.enable_x64(True):
    one, one_metrics = _train_steps(config, jax.devices()[:1], num_steps=4, dtype=jnp.float64)
    four, four_metrics = _train_steps(config, jax.devices(), num_steps=4, dtype=jnp.float64)
    losses = [metrics.compute()['loss'] for metrics in (one_metrics, four_metrics)]
  assert one.params['classifier']['kernel'].dtype == jnp.float64
  np.testing.assert_allclose(*losses, rtol=1e-12)
  _assert_trees_close(one.params, four.params, rtol=1e-9, atol=1e-12)
  _assert_trees_close(one.batch_stats, four.batch_stats, rtol=1e-9, atol=1e-12)


def test_train_step_compiles_once(tmp_path):
  config = tiny_config(num_epochs=1)
  jitted = []
  original_init = train.Trainer.__init__

  def init(self, *args, **kwargs):
    original_init(self, *args, **kwargs)
    jitted.append(self.train_step)

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(train.Trainer, '__init__', init)
    train.train_and_evaluate(config, tmp_path)
  assert jitted[0]._cache_size() == 1  # pylint: disable=protected-access


def test_training_on_tfds_mock_data(tmp_path):
  config = tiny_config(**{'data.name': 'cifar10', 'num_epochs': 1})
  with tfds.testing.mock_data(num_examples=48):
    state, test_metrics = train.train_and_evaluate(config, tmp_path)
  assert int(state.step) == 48 // 16
  assert state.params['classifier']['kernel'].shape[-1] == 10
  assert np.isfinite(test_metrics['test_loss'])
  assert (tmp_path / 'attention' / 'step_00000003.png').exists()
  assert len(lpta.load_run(tmp_path).class_names) == 10


@pytest.mark.parametrize('overrides, message', [
    ({'batch_size': 18}, 'config.batch_size=18 is not divisible by the 4 devices'),
    ({'eval_batch_size': 0}, 'config.eval_batch_size=0 must be a positive integer'),
    ({'optimizer.schedule': 'linear'}, "config.optimizer.schedule='linear' is not a schedule"),
    ({'optimizer.name': 'rmsprop'}, "config.optimizer.name='rmsprop' is not an optimiser"),
    ({'optimizer.adam_betas': (0.9, 1.)}, 'adam_betas=.0.9, 1.0. must be two numbers'),
    ({'optimizer.learning_rate': -0.1}, 'config.optimizer.learning_rate=-0.1 must be positive'),
    ({'model.head': 'sum'}, "config.model.head='sum' is not valid"),
    ({'model.name': 'transformer'}, "config.model.name='transformer' is not a model"),
    ({'data.name': 'imagenet'}, 'imagenet'),
    ({'keep_best_checkpoints': -1}, 'keep_best_checkpoints=-1'),
    ({'optimizer.dampening': 0.9, 'optimizer.nesterov': True}, 'dampening=0.9 needs SGD'),
    ({'optimizer.dampening': 0.9, 'optimizer.name': 'adam'}, 'dampening=0.9 needs SGD'),
    ({'optimizer.dampening': 1.5}, r'a value in \(0, 1\]'),
    ({'optimizer.decay_factors': (2.,), 'optimizer.schedule': 'multistep'},
     'decay_factors has 1 factors for 3 decay_epochs'),
    ({'optimizer.decay_factors': (2.,)}, "multistep schedule only, not 'cosine'"),
    ({'model.num_levels': 0, 'model.junction_gradient_averaging': True},
     'needs attention levels'),
    ({'init_from.workdir': '/nowhere', 'init_from.step': '7a'}, "config.init_from.step='7a'"),
    ({'init_from.step': 'last'}, "config.init_from.step='last'"),
    ({'init_from.exclude': (1,)}, 'must be a tuple of module paths'),
])
def test_bad_config_values_are_refused_before_training(tmp_path, overrides, message):
  with pytest.raises(ConfigError, match=message):
    train.train_and_evaluate(tiny_config(**overrides), tmp_path / 'run')
  assert not (tmp_path / 'run').exists()


def test_a_workdir_that_is_a_file_or_lies_under_one_is_refused_before_data_is_read(tmp_path):
  (tmp_path / 'file').write_text('not a folder')
  for workdir in (tmp_path / 'file', tmp_path / 'file' / 'run'):
    with pytest.raises(ConfigError, match='is a file, not a folder'):
      train.train_and_evaluate(tiny_config(**{'data.name': 'cifar10',
                                              'data.data_dir': str(tmp_path / 'no-tfds')}),
                               workdir)
  assert not (tmp_path / 'no-tfds').exists()  # refused before the data set was looked at
