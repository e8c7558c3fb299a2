"""Attention transfer on the shared train loop: objectives, teachers loaded with load_run (their
own normalisation, any family), freezing, errors."""

import functools
import logging

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import lpta
from lpta import checkpoints
from lpta import data
from lpta import families
from lpta import losses
from lpta import objectives
from lpta import runs
from lpta import sharding
from lpta import train
from lpta.data import preprocessing
from lpta.errors import CheckpointError, ConfigError
from lpta.models import resnet
from test_train import constant_rate_optimizer, event_tags, tiny_config, tree_equal


def wrn_config(**overrides):
  """WRN-10-1 on the 16×16 synthetic set of test_train (4 steps per epoch)."""
  config = tiny_config(num_epochs=1)
  config.model = ml_collections.ConfigDict(dict(name='wrn', depth=10, widen_factor=1))
  config.update_from_flattened_dict(overrides)
  return config


def _transfer(method, **overrides):
  config = tiny_config().transfer
  config.method = method
  config.update_from_flattened_dict(overrides)
  return config


# The objectives, on hand-made outputs.

def _outputs(seed=0):
  keys = jax.random.split(jax.random.key(seed), 5)
  logits, teacher_logits = (jax.random.normal(k, (4, 3)) for k in keys[:2])
  student_groups = (jax.random.normal(keys[2], (4, 8, 8, 2)),)
  teacher_groups = (jax.random.normal(keys[3], (4, 8, 8, 5)),)
  images = jax.random.uniform(keys[4], (4, 8, 8, 1))
  return logits, teacher_logits, student_groups, teacher_groups, images


def _student(logits, groups, pixels, labels, step=0, inference_loss=None):
  return objectives.Student(logits=logits, aux={}, transfer_points=groups, pixels=pixels,
                            labels=labels, step=jnp.asarray(step), num_train_steps=10,
                            inference_loss=inference_loss)


def test_objective_none_is_cross_entropy_and_kd_logs_its_distillation_term():
  logits, teacher_logits, groups, _, images = _outputs()
  labels = jnp.array([0, 1, 2, 1])
  student = _student(logits, groups, images, labels)
  loss, terms = objectives.create(_transfer('none'))(student, {})
  np.testing.assert_allclose(loss, objectives.cross_entropy(logits, labels).mean(), rtol=1e-6)
  assert terms == {}
  kd = objectives.create(_transfer('kd', temperature=2., alpha=.7))
  loss, terms = kd(student, {'logits': teacher_logits})
  np.testing.assert_allclose(
      loss, losses.distillation_loss(logits, teacher_logits, labels, 2., .7), rtol=1e-6)
  assert kd.term_names == ('task_loss', 'distillation_loss')
  np.testing.assert_allclose(terms['task_loss'],
                             .3 * objectives.cross_entropy(logits, labels).mean(), rtol=1e-6)
  np.testing.assert_allclose(terms['distillation_loss'], .7 * 4 * np.mean(np.sum(
      jax.nn.softmax(teacher_logits / 2) * (jax.nn.log_softmax(teacher_logits / 2)
                                            - jax.nn.log_softmax(logits / 2)), -1)), rtol=1e-5)
  assert float(terms['distillation_loss']) > 0


def test_objective_at_kd_adds_decayed_at_terms_to_kd():
  logits, teacher_logits, groups, teacher_groups, images = _outputs()
  labels = jnp.array([0, 1, 2, 1])
  objective = objectives.create(_transfer('at_kd', beta=1000., beta_schedule='linear'), groups)
  loss, terms = objective(_student(logits, groups, images, labels, step=5),
                          {'logits': teacher_logits, 'transfer_points': teacher_groups})
  at_total, per_point = losses.attention_transfer_loss(groups, teacher_groups, 'code', 500.)
  kd = losses.distillation_loss(logits, teacher_logits, labels, 4., .9)
  np.testing.assert_allclose(loss, kd + at_total, rtol=1e-5)
  np.testing.assert_allclose(terms['at_loss_1'], per_point[0], rtol=1e-5)
  np.testing.assert_allclose(terms['transfer_loss'], at_total, rtol=1e-5)
  assert set(objective.term_names) == set(terms) == {
      'task_loss', 'distillation_loss', 'transfer_loss', 'at_loss_1'}


def test_objective_flip_sym_is_zero_for_a_mirror_symmetric_student():
  logits, _, _, _, images = _outputs()
  labels = jnp.array([0, 1, 2, 1])
  weights = jax.random.normal(jax.random.key(3), (8, 3))

  def symmetric_loss(x):  # a function of the image summed with its mirror: flip-invariant
    features = (x + x[:, :, ::-1]).mean(axis=(1, 3))
    return objectives.cross_entropy(features @ weights, labels)

  loss, terms = objectives.create(_transfer('flip_sym'))(
      _student(logits, (), images, labels, inference_loss=symmetric_loss), {})
  np.testing.assert_allclose(terms['transfer_loss'], 0., atol=1e-6)
  np.testing.assert_allclose(loss, objectives.cross_entropy(logits, labels).mean(), rtol=1e-6)


@pytest.mark.parametrize('overrides, message', [
    ({'transfer.method': 'fitnet'}, "config.transfer.method='fitnet' is not a method"),
    ({'transfer.method': 'at'}, 'needs a teacher: set --config.teacher.workdir'),
    ({'teacher.workdir': '/somewhere'}, 'uses no teacher; use at, kd, at_kd, grad_at'),
    ({'transfer.at_form': 'l1'}, "config.transfer.at_form='l1' is not valid"),
])
def test_bad_transfer_config_is_refused(overrides, message):
  with pytest.raises(ConfigError, match=message):
    objectives.validate(wrn_config(**overrides))


# Teachers.

def test_teacher_workdir_without_checkpoint_is_refused_before_training(tmp_path):
  (tmp_path / 'empty').mkdir()
  for workdir in (tmp_path / 'empty', tmp_path / 'missing'):
    config = wrn_config(**{'transfer.method': 'at', 'teacher.workdir': str(workdir)})
    with pytest.raises(CheckpointError, match='holds no checkpoint; train the teacher there'):
      train.train_and_evaluate(config, tmp_path / 'student')
  assert not (tmp_path / 'missing').exists() and not (tmp_path / 'student').exists()
  assert list((tmp_path / 'empty').iterdir()) == []


def _abstract_teacher(model, model_config):
  """A Run of `model` (no arrays: enough for the objectives' checks)."""
  config = ml_collections.ConfigDict({'data': {'name': 'synthetic'}, 'model': model_config})
  return runs.Run(checkpoint='teacher/checkpoints/1', step=1, config=config,
                  family=families.get(config.model), model=model, variables={},
                  normalisation=None, class_names=('a', 'b', 'c', 'd'), image_shape=(16, 16, 3))


def _objective(config, teacher):
  family = families.get(config.model)
  return family.objective(config, family.build(4, jnp.float32), (16, 16, 3), teacher)


def test_teacher_maps_of_another_size_are_refused():
  config = wrn_config(**{'transfer.method': 'at', 'teacher.workdir': 'teacher'})
  # Three ImageNet-style stages: maps of 4², 2², 1² against the student's 16², 8², 4².
  teacher = _abstract_teacher(resnet.ResNet(stage_sizes=(1, 1, 1), num_classes=4),
                              {'name': 'resnet', 'depth': 18})
  with pytest.raises(ConfigError, match='16.16.*4.4'):
    _objective(config, teacher)


def test_teacher_without_transfer_points_is_refused_for_at_but_not_for_kd():
  config = wrn_config(**{'transfer.method': 'at', 'teacher.workdir': 'teacher'})
  vgg_config = tiny_config().model
  teacher = _abstract_teacher(families.create_model(vgg_config, 4), vgg_config.to_dict())
  with pytest.raises(ConfigError, match=r'the teacher \(attention_vgg\) has no transfer points'):
    _objective(config, teacher)
  config.transfer.method = 'kd'
  assert _objective(config, teacher).term_names == ('task_loss', 'distillation_loss')


@pytest.fixture(scope='module')
def wrn_teacher(tmp_path_factory):
  workdir = tmp_path_factory.mktemp('wrn_teacher')
  train.train_and_evaluate(wrn_config(), workdir)
  return workdir


def test_student_with_at_from_a_frozen_teacher(tmp_path, monkeypatch, caplog, wrn_teacher):
  caplog.set_level(logging.INFO)
  teacher_dir, student_dir = wrn_teacher, tmp_path / 'student'
  teacher_files = {p: p.stat().st_mtime_ns for p in teacher_dir.rglob('*') if p.is_file()}

  loaded = []
  original_load = runs.load_run

  def recording_load(*args, **kwargs):
    teacher = original_load(*args, **kwargs)
    loaded.append((teacher, jax.tree.map(np.array, teacher.variables)))
    return teacher

  monkeypatch.setattr(runs, 'load_run', recording_load)
  config = wrn_config(**{'transfer.method': 'at', 'teacher.workdir': str(teacher_dir),
                         'seed': 1})
  student, _ = train.train_and_evaluate(config, student_dir)

  (teacher, at_load), = loaded
  # The teacher's arrays in memory are bit-identical after the student's steps, and equal the
  # last checkpoint of the teacher run; its files were not touched.
  after = jax.tree.map(np.array, teacher.variables)
  assert tree_equal(at_load, after)
  saved = checkpoints.Checkpointer(teacher_dir / 'checkpoints', read_only=True).restore_items(
      4, {name: teacher.variables[name] for name in ('params', 'batch_stats')})
  assert tree_equal(saved, after)
  assert {p: p.stat().st_mtime_ns for p in teacher_dir.rglob('*') if p.is_file()} == teacher_files
  assert f'{teacher_dir / "checkpoints"}/4' in caplog.text

  # The student learned something and its checkpoint holds only the student.
  assert not tree_equal(student.params, after['params'])
  assert lpta.load_run(student_dir).variables['params'].keys() == student.params.keys()
  assert {'train_at_loss_1', 'train_at_loss_2', 'train_at_loss_3', 'train_task_loss',
          'train_transfer_loss', 'attention_maps'} <= event_tags(student_dir)
  from PIL import Image  # pylint: disable=g-import-not-at-top
  # Student and teacher maps at 3 points side by side, then the original: 7 tiles of 96 px.
  assert Image.open(student_dir / 'attention' / 'step_00000004.png').size == (7 * 96, 2 * 96)


@pytest.fixture(scope='module')
def zca_vgg_teacher(tmp_path_factory):
  """An attention-VGG teacher (no transfer points) trained on ZCA-whitened inputs."""
  workdir = tmp_path_factory.mktemp('zca_vgg_teacher')
  train.train_and_evaluate(tiny_config(**{'num_epochs': 1, 'data.zca': True}), workdir)
  return workdir


def test_kd_and_gradient_at_train_from_an_attention_vgg_teacher(tmp_path, zca_vgg_teacher):
  for method in ('kd', 'grad_at'):
    config = wrn_config(**{'transfer.method': method, 'teacher.workdir': str(zca_vgg_teacher),
                           'transfer.beta': 1.})
    state, metrics = train.train_and_evaluate(config, tmp_path / method)
    assert int(state.step) == 4 and np.isfinite(metrics['test_loss'])
  assert {'train_task_loss', 'train_distillation_loss'} <= event_tags(tmp_path / 'kd')
  assert {'train_task_loss', 'train_transfer_loss'} <= event_tags(tmp_path / 'grad_at')
  from PIL import Image  # pylint: disable=g-import-not-at-top
  # The WRN's 3 activation maps, each next to one of the VGG teacher's 3 attention maps.
  assert Image.open(tmp_path / 'kd' / 'attention' / 'step_00000004.png').size == (7 * 96, 2 * 96)


def test_a_zca_teacher_sees_the_images_through_its_own_normalisation(zca_vgg_teacher):
  teacher = lpta.load_run(zca_vgg_teacher)
  # Its ZCA matrix is the one fitted on its training split, restored from the checkpoint.
  teacher_data = data.get(teacher.config.data).load()
  np.testing.assert_allclose(teacher.normalisation.zca_matrix,
                             teacher_data.statistics.zca_matrix, rtol=1e-6)
  # One train step of a KD student without ZCA, recording what the objective got from the
  # teacher; no augmentation, so the teacher sees the batch as it is.
  config = wrn_config(**{'transfer.method': 'kd', 'teacher.workdir': str(zca_vgg_teacher),
                         'data.random_crop_padding': 0, 'data.random_flip': False})
  family, source = train.validate_config(config, num_devices=4)
  student_data = source.load()
  assert student_data.statistics.zca_matrix is None
  recorded = []

  class RecordingDistillation(objectives.Distillation):
    def teacher_targets(self, teacher_arrays, pixels, labels):
      targets = super().teacher_targets(teacher_arrays, pixels, labels)
      jax.debug.callback(lambda logits: recorded.append(np.asarray(logits)), targets['logits'])
      return targets

  model = family.build(4, jnp.float32)
  mesh = sharding.make_mesh()  # the teacher was loaded onto every device
  state = train.create_train_state(jax.random.key(0), model,
                                   constant_rate_optimizer(config, 0.05),
                                   (16, 16, 3), mesh, family)
  batch = {name: array[:16] for name, array in student_data.shards['train'].items()}
  objective = RecordingDistillation(config.transfer, teacher=teacher)
  jax.block_until_ready(jax.jit(functools.partial(
      train.train_step, source=source, family=family, objective=objective, num_train_steps=4))(
          state, train.train_metrics_class(objective.term_names).empty(), batch,
          student_data.statistics, jax.random.key(1), teacher.arrays))
  assert len(recorded) == 1
  expected, _ = teacher.predict(batch['image'])
  np.testing.assert_allclose(recorded[0], expected, rtol=1e-4, atol=1e-5)
  # Fed through the student's statistics instead, the teacher answers differently: by far more
  # than the tolerance above (a barely trained teacher's logits depend little on its input).
  wrong, _ = teacher.model.apply(
      teacher.variables, student_data.statistics(preprocessing.to_unit_range(batch['image'])),
      train=False)
  assert np.max(np.abs(np.asarray(wrong) - np.asarray(expected))) > 1e-4


def test_gradient_at_reaches_the_student_parameters():
  config = wrn_config()
  family = families.get(config.model)
  model = family.build(4, jnp.float32)
  pixels = jax.random.uniform(jax.random.key(0), (4, 16, 16, 3))
  labels = jnp.array([0, 1, 2, 3])
  identity = preprocessing.Normalisation(jnp.zeros(3), jnp.ones(3))
  student = model.init(jax.random.key(1), pixels, train=False)
  teacher_variables = model.init(jax.random.key(2), pixels, train=False)
  teacher = runs.Run(checkpoint='t', step=1, config=config, family=family, model=model,
                     variables=teacher_variables, normalisation=identity,
                     class_names=('a', 'b', 'c', 'd'), image_shape=(16, 16, 3))
  objective = objectives.create(_transfer('grad_at', beta=1.), (), teacher)

  def transfer_loss(params, teacher_arrays):
    targets = objective.teacher_targets(teacher_arrays, pixels, labels)

    def inference_loss(x):
      return objectives.cross_entropy(
          model.apply({**student, 'params': params}, x, train=False)[0], labels)

    logits, aux = model.apply({**student, 'params': params}, pixels, train=False)
    student_outputs = _student(logits, (), pixels, labels, inference_loss=inference_loss)
    return objective(student_outputs, targets)[1]['transfer_loss']

  teacher_arrays = {'variables': teacher_variables, 'normalisation': identity}
  own_arrays = {'variables': student, 'normalisation': identity}
  grads = jax.grad(transfer_loss)(student['params'], teacher_arrays)
  norms = [float(jnp.abs(g).max()) for g in jax.tree.leaves(grads)]
  assert all(np.isfinite(norms)) and max(norms) > 0
  assert float(transfer_loss(student['params'], teacher_arrays)) > 0
  assert float(transfer_loss(student['params'], own_arrays)) == 0.
  grads_at_zero = jax.grad(transfer_loss)(student['params'], own_arrays)
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads_at_zero))
