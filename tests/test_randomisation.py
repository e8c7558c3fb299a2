"""lpta.evaluators.randomisation: the layers, the cascade, the similarity measures against scipy
and by hand, and the sanity check itself on a trained toy network."""

import csv
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.stats

from lpta import evaluators
from lpta import maps
from lpta.errors import ConfigError
from lpta.evaluators import randomisation
from test_faithfulness import _synthetic_data_config
import toy_runs

SIZE, CLASSES = 8, 4


class ToyNet(nn.Module):
  """Two convolutions, a hidden dense layer and the logits; its learned 'map' (aux) is the image
  itself, which no weight changes."""

  @nn.compact
  def __call__(self, images, *, train):
    del train
    x = nn.relu(nn.Conv(8, (3, 3), name='conv1')(images))
    x = nn.relu(nn.Conv(8, (3, 3), name='conv2')(x))
    x = nn.relu(nn.Dense(16, name='hidden')(x.reshape(len(x), -1)))
    return nn.Dense(CLASSES, name='logits')(x), {'map': images[..., 0]}


def _prototype_data(count, seed):
  """Images of 4 classes: class k is a fixed random 8×8 pattern plus noise (σ .3), clipped."""
  prototypes = np.random.default_rng(0).uniform(0, 1, (CLASSES, SIZE, SIZE, 1))
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, CLASSES, count)
  images = np.clip(prototypes[labels] + rng.normal(0, .3, (count, SIZE, SIZE, 1)), 0, 1)
  return images.astype(np.float32), labels


@pytest.fixture(scope='module')
def trained_params():
  """ToyNet after 100 full-batch Adam steps on 512 prototype images."""
  images, labels = _prototype_data(512, 1)
  model = ToyNet()
  params = model.init(jax.random.key(0), images[:1], train=False)['params']
  optimizer = optax.adam(1e-2)

  def loss(params):
    logits, _ = model.apply({'params': params}, images, train=False)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

  @jax.jit
  def step(params, state):
    updates, state = optimizer.update(jax.grad(loss)(params), state)
    return optax.apply_updates(params, updates), state

  state = optimizer.init(params)
  for _ in range(100):
    params, state = step(params, state)
  return params


class Unsorted(nn.Module):
  """Layers whose names sort in another order than the one they are called in, one nested."""

  @nn.compact
  def __call__(self, images, *, train):
    del train
    x = nn.Conv(2, (3, 3), name='zeta')(images)
    x = Block(name='beta')(x)
    return nn.Dense(2, name='alpha')(x.reshape(len(x), -1)), {}


class Block(nn.Module):

  @nn.compact
  def __call__(self, x):
    return nn.Conv(2, (1, 1), name='second')(nn.relu(nn.Conv(2, (1, 1), name='first')(x)))


def test_kernel_layers_are_the_modules_with_kernels():
  params = {'conv1': {'kernel': 1, 'bias': 2}, 'norm': {'scale': 3},
            'block': {'inner': {'kernel': 4}, 'proj': {'kernel': 5, 'bias': 6}},
            'logits': {'kernel': 7}}
  assert randomisation.kernel_layers(params) == [
      ('conv1',), ('block', 'inner'), ('block', 'proj'), ('logits',)]


def test_layers_come_in_the_order_the_forward_pass_calls_them(tmp_path):
  run = toy_runs.toy_run(Unsorted(), (4, 4, 1), 2, tmp_path)
  layers = randomisation.kernel_layers(run.variables['params'])
  assert sorted(layers) == [('alpha',), ('beta', 'first'), ('beta', 'second'), ('zeta',)]
  assert randomisation.forward_order(run, sorted(layers)) == [
      ('zeta',), ('beta', 'first'), ('beta', 'second'), ('alpha',)]


def test_with_layers_from_takes_exactly_the_named_modules_from_the_fresh_tree():
  params = {'a': {'kernel': 1, 'bias': 2}, 'b': {'c': {'kernel': 3}, 'd': {'kernel': 4}}}
  fresh = {'a': {'kernel': 10, 'bias': 20}, 'b': {'c': {'kernel': 30}, 'd': {'kernel': 40}}}
  assert randomisation.with_layers_from(params, fresh, [('b', 'c'), ('a',)]) == {
      'a': {'kernel': 10, 'bias': 20}, 'b': {'c': {'kernel': 30}, 'd': {'kernel': 4}}}
  assert randomisation.with_layers_from(params, fresh, [('b',)]) == {
      'a': {'kernel': 1, 'bias': 2}, 'b': {'c': {'kernel': 30}, 'd': {'kernel': 40}}}


def test_the_cascade_goes_from_the_top_down_and_independent_takes_one_layer_each():
  assert randomisation.randomisations([('a',), ('b',), ('c',)]) == [
      ('cascading', 1, [('c',)]), ('cascading', 2, [('c',), ('b',)]),
      ('cascading', 3, [('c',), ('b',), ('a',)]),
      ('independent', 1, [('c',)]), ('independent', 2, [('b',)]), ('independent', 3, [('a',)])]


def test_spearman_equals_scipy_with_ties_and_is_zero_for_a_constant_map():
  rng = np.random.default_rng(0)
  first = rng.integers(0, 4, (5, 6, 6)).astype(float)  # many ties
  second = first + rng.normal(0, 1.5, first.shape)
  expected = [scipy.stats.spearmanr(a.ravel(), b.ravel()).statistic
              for a, b in zip(first, second)]
  np.testing.assert_allclose(randomisation.spearman(first, second), expected, rtol=1e-12)
  np.testing.assert_allclose(randomisation.spearman(first, -first), -1.)
  assert randomisation.spearman(np.ones((1, 6, 6)), first[:1])[0] == 0.


def test_pearson_by_hand():
  first = np.array([[1., 2., 3.], [1., 1., 1.]])
  second = np.array([[2., 4., 7.], [3., 1., 2.]])
  # Row 0: deviations (−1, 0, 1) and (−7/3, −1/3, 8/3): 5 / (√2 · √(114/9)); row 1 constant.
  expected = 5 / (np.sqrt(2) * np.sqrt(114 / 9))
  np.testing.assert_allclose(randomisation.pearson(first, second), [expected, 0.])


def test_ssim_and_hog_are_one_for_equal_maps_and_see_through_scaling():
  rng = np.random.default_rng(1)
  maps_ = rng.uniform(0, 1, (3, 16, 16))
  values = randomisation.similarities(maps_, 5 * maps_ + 2, hog_cell=4)
  # Min-max scaling (float32, lpta.maps) makes 5m + 2 the same map up to a rounding of ~1e-7
  # per pixel, which moves a similarity of 1 by about as much.
  for metric in randomisation.METRICS:
    np.testing.assert_allclose(values[metric], 1., atol=1e-5, err_msg=metric)
  other = rng.uniform(0, 1, (3, 16, 16))
  unrelated = randomisation.similarities(maps_, other, hog_cell=4)
  # Independent uniform noise: |rank correlation| ~ 1/√256 = .06, SSIM of noise near 0.
  assert (np.abs(unrelated['spearman']) < .25).all() and (unrelated['ssim'] < .3).all()


def test_a_trained_toy_network_s_gradient_maps_change_when_its_last_layer_is_randomised(
    tmp_path, trained_params):
  images, labels = _prototype_data(64, 2)
  run = toy_runs.toy_run(ToyNet(), (SIZE, SIZE, 1), CLASSES, tmp_path,
                         variables={'params': trained_params})
  logits, _ = run.predict(images)
  assert (np.asarray(logits).argmax(-1) == labels).mean() > .9  # it learned the task
  gradient = jax.jit(maps.map_function(run, 'gradient', target='label'))

  def maps_of(params):
    arrays = {**run.arrays, 'variables': {'params': params}}
    return np.asarray(gradient(arrays, jnp.asarray(images), jnp.asarray(labels), None))

  trained = maps_of(trained_params)
  np.testing.assert_allclose(randomisation.spearman(trained, maps_of(trained_params)), 1.)
  for seed in (0, 1, 2):
    last_randomised = randomisation.with_layers_from(
        trained_params, randomisation.fresh_params(run, seed), [('logits',)])
    assert randomisation.spearman(trained, maps_of(last_randomised)).mean() < .5, seed


def test_evaluate_run_flags_a_map_that_ignores_the_weights(tmp_path, trained_params):
  data_config = _synthetic_data_config()
  data_config.update(synthetic_image_shape=(SIZE, SIZE, 1), synthetic_num_classes=CLASSES)
  run = toy_runs.toy_run(ToyNet(), (SIZE, SIZE, 1), CLASSES, tmp_path, maps='map',
                         variables={'params': trained_params}, data_config=data_config)
  config = randomisation.ParameterRandomisation.default_config()
  config.update(maps=('attention', 'gradient'), batch_size=4)  # 6 test images: 4 + 2 padded
  results = evaluators.evaluate_run(run, 'parameter_randomisation', config)

  kinds, layers = ('attention', 'gradient'), 4
  assert results['layers'] == layers
  expected = {f'{mode}_{k:02d}_{metric}_{kind}' for mode in randomisation.MODES
              for k in range(1, layers + 1) for metric in randomisation.METRICS for kind in kinds}
  expected |= {f'randomised_{metric}_{kind}' for metric in randomisation.METRICS
               for kind in kinds} | {f'insensitive_{kind}' for kind in kinds} | {'layers'}
  assert set(results) == expected
  # The image as its own map: every randomisation leaves it as it is.
  for name in expected:
    if name.endswith('_attention') and not name.startswith('insensitive'):
      assert results[name] == pytest.approx(1.), name
  assert results['insensitive_attention'] == 1. and results['insensitive_gradient'] == 0.
  # The cascade's first step and the first independent one both randomise the top layer alone.
  for metric in randomisation.METRICS:
    assert results[f'cascading_01_{metric}_gradient'] == pytest.approx(
        results[f'independent_01_{metric}_gradient'])
    assert results[f'randomised_{metric}_gradient'] == results[
        f'cascading_04_{metric}_gradient']

  directory = tmp_path / 'eval' / 'parameter_randomisation'
  with open(directory / 'results.json') as file:
    assert json.load(file)['results'] == results
  with open(directory / 'similarity.csv') as file:
    rows = list(csv.DictReader(file))
  assert len(rows) == len(randomisation.MODES) * layers * len(kinds) * len(randomisation.METRICS)
  assert [row['layer'] for row in rows if row['mode'] == 'independent'
          and row['kind'] == 'gradient' and row['metric'] == 'ssim'] == [
              'logits', 'hidden', 'conv2', 'conv1']
  for row in rows:
    assert float(row['mean']) == pytest.approx(
        results[f"{row['mode']}_{int(row['k']):02d}_{row['metric']}_{row['kind']}"])
  for figure in ('similarity.png', 'maps.png'):
    with open(directory / figure, 'rb') as file:
      assert file.read(8) == b'\x89PNG\r\n\x1a\n'


@pytest.mark.parametrize('field, value', [('hog_cell', 0), ('insensitive_above', 2.),
                                          ('maps', ('noise',))])
def test_invalid_fields_raise_one_line_config_errors(field, value):
  config = randomisation.ParameterRandomisation.default_config()
  config[field] = value
  with pytest.raises(ConfigError, match=f'--eval.{field}=') as error:
    randomisation.ParameterRandomisation(config)
  assert '\n' not in str(error.value)


def test_maps_too_small_for_two_hog_cells_are_refused(tmp_path):
  run = toy_runs.toy_run(ToyNet(), (SIZE, SIZE, 1), CLASSES, tmp_path)
  config = randomisation.ParameterRandomisation.default_config()
  config.hog_cell = 5
  with pytest.raises(ConfigError, match='--eval.hog_cell=5 leaves fewer than 2 HOG cells on the '
                     '8×8 maps; use at most 4'):
    evaluators.evaluate_run(run, 'parameter_randomisation', config)


def test_only_the_modes_asked_for_run(tmp_path, trained_params):
  data_config = _synthetic_data_config()
  data_config.update(synthetic_image_shape=(SIZE, SIZE, 1), synthetic_num_classes=CLASSES)
  run = toy_runs.toy_run(ToyNet(), (SIZE, SIZE, 1), CLASSES, tmp_path,
                         variables={'params': trained_params}, data_config=data_config)
  config = randomisation.ParameterRandomisation.default_config()
  config.update(maps=('gradient',), modes=('independent',))
  results = evaluators.evaluate_run(run, 'parameter_randomisation', config)
  assert sorted(results) == sorted(['layers', *(
      f'independent_{k:02d}_{metric}_gradient' for k in range(1, 5)
      for metric in randomisation.METRICS)])
  assert not (tmp_path / 'eval' / 'parameter_randomisation' / 'maps.png').exists()
