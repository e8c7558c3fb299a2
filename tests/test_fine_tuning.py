"""Fine-tuning from another run (config.init_from, lpta.fine_tuning)."""

import json

import flax.traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lpta
from lpta import families
from lpta import fine_tuning
from lpta import sharding
from lpta import train
from lpta.errors import CheckpointError, ConfigError
from test_train import tiny_config


def _flat(variables):
  return flax.traverse_util.flatten_dict(jax.device_get(dict(variables)), sep='/')


def _fresh(config, num_classes, image_shape):
  family = families.get(config.model)
  model = family.build(num_classes, jnp.float32)
  variables = model.init(jax.random.key(1), jnp.zeros((1, *image_shape)), train=False)
  return family, variables


def _initialise(config, num_classes=6, image_shape=(16, 16, 3)):
  family, fresh = _fresh(config, num_classes, image_shape)
  variables, report = fine_tuning.initialise_from(config.init_from, fresh, family, num_classes,
                                                  image_shape, sharding.make_mesh())
  return _flat(fresh), _flat(variables), report


def test_another_class_count_loads_everything_but_the_classifier_bit_for_bit(finished_run):
  workdir = finished_run[0]
  source = _flat(lpta.load_run(workdir).variables)
  fresh, loaded, report = _initialise(tiny_config(**{'init_from.workdir': str(workdir)}))
  classifier = {'params/classifier/kernel', 'params/classifier/bias'}
  assert set(report.reinitialised) == classifier and not report.unused
  assert set(report.loaded) == set(loaded) - classifier == set(source) - classifier
  assert any(path.startswith('batch_stats/') for path in report.loaded)
  for path in report.loaded:
    np.testing.assert_array_equal(loaded[path], source[path])
  for path in classifier:
    assert loaded[path].shape[-1] == 6 and source[path].shape[-1] == 4
    np.testing.assert_array_equal(loaded[path], fresh[path])


def test_excluded_modules_and_modules_the_source_lacks_are_initialised_afresh(finished_run):
  workdir = str(finished_run[0])
  fresh, loaded, report = _initialise(
      tiny_config(**{'init_from.workdir': workdir, 'init_from.exclude': ('global',),
                     'model.head': 'indep'}))
  # 'indep' has classifier1..3 where the source has one 'classifier'.
  assert {path.split('/')[1] for path in report.reinitialised} == {
      'global', 'classifier1', 'classifier2', 'classifier3'}
  assert set(report.unused) == {'params/classifier/kernel', 'params/classifier/bias'}
  for path in report.reinitialised:
    np.testing.assert_array_equal(loaded[path], fresh[path])
  assert 'backbone/conv1/Conv_0' in '\n'.join(report.lines())


def test_another_shape_outside_the_classifier_is_refused_in_one_line(finished_run):
  config = tiny_config(**{'init_from.workdir': str(finished_run[0])})
  with pytest.raises(CheckpointError) as error:
    _initialise(config, image_shape=(48, 48, 3))  # 2×2 features feed 'global'
  message = str(error.value)
  assert '\n' not in message
  assert 'params/global/kernel has shape (32, 32) in ' in message
  assert 'and (128, 32) in this model' in message
  assert "--config.init_from.exclude=\"('global',)\"" in message
  # As the message says: excluding it loads the rest.
  config.init_from.exclude = ('global',)
  _, _, report = _initialise(config, image_shape=(48, 48, 3))
  assert 'params/global/kernel' in report.reinitialised
  assert 'params/backbone/conv13/Conv_0/kernel' in report.loaded


def test_a_numbered_step_from_the_command_line_loads_that_checkpoint(finished_run):
  config = tiny_config(**{'init_from.workdir': str(finished_run[0]), 'init_from.step': '4'})
  fine_tuning.validate(config.init_from)  # --config.init_from.step=4 arrives as the string '4'
  _, loaded, report = _initialise(config)
  assert report.source.endswith('checkpoints/4')
  step4 = _flat(lpta.load_run(finished_run[0], step=4).variables)
  np.testing.assert_array_equal(loaded['params/global/kernel'], step4['params/global/kernel'])


def test_an_exclude_entry_that_names_no_module_is_refused(finished_run):
  config = tiny_config(**{'init_from.workdir': str(finished_run[0]),
                          'init_from.exclude': ('globl',)})
  with pytest.raises(ConfigError, match="exclude names 'globl', which is no module"):
    _initialise(config)


def test_a_missing_source_run_is_refused_with_how_to_make_one(tmp_path):
  with pytest.raises(CheckpointError, match='holds no checkpoint; train a run there first'):
    _initialise(tiny_config(**{'init_from.workdir': str(tmp_path / 'none')}))


def test_a_fine_tuned_run_records_its_source_and_a_resumed_one_no_longer_reads_it(
    finished_run, tmp_path):
  config = tiny_config(**{'init_from.workdir': str(finished_run[0]), 'num_epochs': 1,
                          'data.synthetic_num_classes': 6, 'optimizer.learning_rate': 1e-9,
                          'optimizer.weight_decay': 0.})
  train.train_and_evaluate(config, tmp_path / 'run')
  # With a learning rate of 1e-9 the trained kernels are still the source's, not a fresh init's.
  source = _flat(lpta.load_run(finished_run[0]).variables)
  tuned = _flat(lpta.load_run(tmp_path / 'run').variables)
  kernel = 'params/backbone/conv5/Conv_0/kernel'
  np.testing.assert_allclose(tuned[kernel], source[kernel], atol=1e-6)
  assert np.abs(source[kernel]).max() > 1e-2
  record = json.loads((tmp_path / 'run' / 'init_from.json').read_text())
  assert record['reinitialised'] == ['params/classifier/bias', 'params/classifier/kernel']
  assert record['source'].endswith('checkpoints/8')
  # Resuming restores the run's own checkpoint, even when the source has moved away.
  config.init_from.workdir = str(tmp_path / 'moved')
  state, _ = train.train_and_evaluate(config, tmp_path / 'run')
  assert int(state.step) == 4
