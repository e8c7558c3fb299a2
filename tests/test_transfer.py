"""Attention transfer on the shared train loop: objectives, teacher loading, freezing, errors."""

import logging

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from lpta import checkpoints
from lpta import losses
from lpta import objectives
from lpta import teacher as teacher_lib
from lpta import train
from lpta.errors import CheckpointError, ConfigError
from lpta.models import resnet
from test_train import _event_tags, tiny_config


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


# The objective, on hand-made outputs.

def _outputs(seed=0):
  keys = jax.random.split(jax.random.key(seed), 5)
  logits, teacher_logits = (jax.random.normal(k, (4, 3)) for k in keys[:2])
  student_groups = (jax.random.normal(keys[2], (4, 8, 8, 2)),)
  teacher_groups = (jax.random.normal(keys[3], (4, 8, 8, 5)),)
  images = jax.random.normal(keys[4], (4, 8, 8, 1))
  return logits, teacher_logits, student_groups, teacher_groups, images


def test_objective_none_is_cross_entropy_and_kd_is_distillation():
  logits, teacher_logits, groups, teacher_groups, images = _outputs()
  labels = jnp.array([0, 1, 2, 1])
  targets = {'logits': teacher_logits, 'group_activations': teacher_groups}
  aux = {'group_activations': groups}
  loss, terms = objectives.Objective(_transfer('none'), 10)(None, logits, aux, images, labels,
                                                            targets, 0)
  np.testing.assert_allclose(loss, objectives.cross_entropy(logits, labels).mean(), rtol=1e-6)
  assert terms == {}
  loss, terms = objectives.Objective(_transfer('kd', temperature=2., alpha=.7), 10)(
      None, logits, aux, images, labels, targets, 0)
  np.testing.assert_allclose(
      loss, losses.distillation_loss(logits, teacher_logits, labels, 2., .7), rtol=1e-6)
  assert float(terms['transfer_loss']) == 0.


def test_objective_at_kd_adds_decayed_at_terms_to_kd():
  logits, teacher_logits, groups, teacher_groups, images = _outputs()
  labels = jnp.array([0, 1, 2, 1])
  objective = objectives.Objective(_transfer('at_kd', beta=1000., beta_schedule='linear'), 10)
  loss, terms = objective(None, logits, {'group_activations': groups}, images, labels,
                          {'logits': teacher_logits, 'group_activations': teacher_groups}, 5)
  at_total, per_point = losses.attention_transfer_loss(groups, teacher_groups, 'code', 500.)
  kd = losses.distillation_loss(logits, teacher_logits, labels, 4., .9)
  np.testing.assert_allclose(loss, kd + at_total, rtol=1e-5)
  np.testing.assert_allclose(terms['at_loss_1'], per_point[0], rtol=1e-5)
  assert objective.term_names(1) == ('task_loss', 'transfer_loss', 'at_loss_1')


def test_objective_flip_sym_is_zero_for_a_mirror_symmetric_student():
  logits, _, _, _, images = _outputs()
  labels = jnp.array([0, 1, 2, 1])
  weights = jax.random.normal(jax.random.key(3), (8, 3))

  def symmetric_loss(x):  # a function of the image summed with its mirror: flip-invariant
    features = (x + x[:, :, ::-1]).mean(axis=(1, 3))
    return objectives.cross_entropy(features @ weights, labels)

  loss, terms = objectives.Objective(_transfer('flip_sym'), 10)(
      symmetric_loss, logits, {}, images, labels, {}, 0)
  np.testing.assert_allclose(terms['transfer_loss'], 0., atol=1e-6)
  np.testing.assert_allclose(loss, objectives.cross_entropy(logits, labels).mean(), rtol=1e-6)


@pytest.mark.parametrize('overrides, message', [
    ({'transfer.method': 'fitnet'}, "config.transfer.method='fitnet' is not a method"),
    ({'transfer.method': 'at'}, 'needs a teacher: set --config.teacher.workdir'),
    ({'teacher.workdir': '/somewhere'}, 'uses no teacher'),
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
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)),
                                                train=False))
  config = ml_collections.ConfigDict({'data': {'name': 'synthetic'}, 'model': model_config})
  return teacher_lib.Teacher(model, variables, config, 'teacher/checkpoints/1')


def test_teacher_maps_of_another_size_are_refused():
  config = wrn_config(**{'transfer.method': 'at', 'teacher.workdir': 'teacher'})
  student = train.models.create_model(config.model, 4)
  # Three ImageNet-style stages: maps of 4², 2², 1² against the student's 16², 8², 4².
  teacher = _abstract_teacher(resnet.ResNet(stage_sizes=(1, 1, 1), num_classes=4),
                              {'name': 'resnet'})
  with pytest.raises(ConfigError, match='16.16.*4.4'):
    teacher_lib.check_compatible(teacher, config, student)


def test_teacher_without_transfer_points_is_refused_for_at_but_not_for_kd():
  config = wrn_config(**{'transfer.method': 'at', 'teacher.workdir': 'teacher'})
  student = train.models.create_model(config.model, 4)
  vgg_config = tiny_config().model
  teacher = _abstract_teacher(train.models.create_model(vgg_config, 4), vgg_config.to_dict())
  with pytest.raises(ConfigError, match=r'the teacher \(attention_vgg\) has no transfer points'):
    teacher_lib.check_compatible(teacher, config, student)
  config.transfer.method = 'kd'
  teacher_lib.check_compatible(teacher, config, student)


def test_student_with_at_from_a_frozen_teacher(tmp_path, monkeypatch, caplog):
  caplog.set_level(logging.INFO)
  teacher_dir, student_dir = tmp_path / 'teacher', tmp_path / 'student'
  train.train_and_evaluate(wrn_config(), teacher_dir)
  teacher_files = {p: p.stat().st_mtime_ns for p in teacher_dir.rglob('*') if p.is_file()}

  loaded = []
  original_load = teacher_lib.load_teacher

  def recording_load(*args, **kwargs):
    teacher = original_load(*args, **kwargs)
    loaded.append((teacher, jax.tree.map(np.array, teacher.variables)))
    return teacher

  monkeypatch.setattr(teacher_lib, 'load_teacher', recording_load)
  config = wrn_config(**{'transfer.method': 'at', 'teacher.workdir': str(teacher_dir),
                         'seed': 1})
  student, _ = train.train_and_evaluate(config, student_dir)

  (teacher, at_load), = loaded
  # The teacher's arrays in memory are bit-identical after the student's steps, and equal the
  # last checkpoint of the teacher run; its files were not touched.
  after = jax.tree.map(np.array, teacher.variables)
  assert all(jax.tree.leaves(jax.tree.map(np.array_equal, at_load, after)))
  saved = checkpoints.Checkpointer(teacher_dir / 'checkpoints', read_only=True).restore_items(
      4, {name: teacher.variables[name] for name in ('params', 'batch_stats')})['arrays']
  assert all(jax.tree.leaves(jax.tree.map(np.array_equal, saved, after)))
  assert {p: p.stat().st_mtime_ns for p in teacher_dir.rglob('*') if p.is_file()} == teacher_files
  assert f'{teacher_dir / "checkpoints"}/4' in caplog.text

  # The student learned something and its checkpoint holds only the student.
  assert not all(jax.tree.leaves(jax.tree.map(np.array_equal, student.params, after['params'])))
  student_params = checkpoints.Checkpointer(student_dir / 'checkpoints', read_only=True)
  restored = student_params.restore_items(4, {'params': student.params})['arrays']['params']
  assert jax.tree.structure(restored) == jax.tree.structure(student.params)
  assert {'train_at_loss_1', 'train_at_loss_2', 'train_at_loss_3', 'train_task_loss',
          'train_transfer_loss', 'attention_maps'} <= _event_tags(student_dir)
  from PIL import Image  # pylint: disable=g-import-not-at-top
  # Student and teacher maps at 3 points side by side, then the original: 7 tiles of 96 px.
  assert Image.open(student_dir / 'attention' / 'step_00000004.png').size == (7 * 96, 2 * 96)


def test_gradient_at_reaches_the_student_parameters():
  config = wrn_config()
  model = train.models.create_model(config.model, 4)
  images = jax.random.uniform(jax.random.key(0), (4, 16, 16, 3))
  labels = jnp.array([0, 1, 2, 3])
  student = model.init(jax.random.key(1), images, train=False)
  teacher = model.init(jax.random.key(2), images, train=False)

  def transfer_loss(params, teacher_variables):
    objective = objectives.Objective(_transfer('grad_at', beta=1.), 10, model)
    targets = objective.teacher_targets(teacher_variables, images, labels)

    def inference_loss(x):
      return objectives.cross_entropy(
          model.apply({**student, 'params': params}, x, train=False)[0], labels)

    logits, aux = model.apply({**student, 'params': params}, images, train=False)
    return objective(inference_loss, logits, aux, images, labels, targets, 0)[1]['transfer_loss']

  grads = jax.grad(transfer_loss)(student['params'], teacher)
  norms = [float(jnp.abs(g).max()) for g in jax.tree.leaves(grads)]
  assert all(np.isfinite(norms)) and max(norms) > 0
  assert float(transfer_loss(student['params'], teacher)) > 0
  assert float(transfer_loss(student['params'], student)) == 0.
  grads_at_zero = jax.grad(transfer_loss)(student['params'], student)
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads_at_zero))
