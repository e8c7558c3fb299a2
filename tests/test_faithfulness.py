"""The deletion/insertion evaluator (lpta.evaluators.faithfulness): AUCs, blur, pixel ranking and
curves against hand computations, and the files evaluate_run writes."""

import csv
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import ndimage

from lpta import evaluators
from lpta.errors import ConfigError
from lpta.errors import LptaError
from lpta.evaluators import faithfulness
from toy_runs import toy_run


def _config(**fields) -> ml_collections.ConfigDict:
  """The evaluator's default config with `fields` replaced (any types, for validation tests)."""
  values = faithfulness.DeletionInsertion.default_config().to_dict()
  values.update(fields)
  return ml_collections.ConfigDict(values)


def _sigmoid(x):
  return 1 / (1 + np.exp(-np.asarray(x, np.float64)))


class LinearEvidence(nn.Module):
  """Two classes on one-channel images: logits (Σ_ij w_ij x_ij − offset, 0), so the probability
  of class 0 is σ(Σ w x − offset); its learned map is w / max w for every image."""
  weights: tuple[tuple[float, ...], ...]
  offset: float = 0.

  @nn.compact
  def __call__(self, images, *, train):
    weights = jnp.asarray(self.weights, jnp.float32)
    evidence = jnp.sum(images[..., 0] * weights, axis=(1, 2)) - self.offset
    logits = jnp.stack([evidence, jnp.zeros_like(evidence)], axis=-1)
    return logits, {'map': jnp.broadcast_to(weights / weights.max(), images.shape[:3])}


class TinyConvNet(nn.Module):
  """conv 3×3 → ReLU → mean → dense; its learned map is σ(mean of the conv's channels), or a
  constant map with `constant_map`."""
  num_classes: int
  constant_map: bool = False

  @nn.compact
  def __call__(self, images, *, train):
    features = nn.relu(nn.Conv(4, (3, 3), name='conv')(images))
    logits = nn.Dense(self.num_classes)(features.mean(axis=(1, 2)))
    learned = jax.nn.sigmoid(features.mean(axis=-1))
    return logits, {'map': jnp.ones_like(learned) if self.constant_map else learned}


def test_area_under_curve_by_hand():
  steps = 28
  assert faithfulness.area_under_curve(np.full((3, steps + 1), .37)) == pytest.approx(.37)
  assert faithfulness.area_under_curve(np.linspace(0, 1, steps + 1)) == pytest.approx(.5)
  # Trapezoids of width 1/3: ((1 + .5) / 2 + (.5 + 0) / 2 + 0) / 3 = 1/3.
  assert faithfulness.area_under_curve(np.array([1., .5, 0., 0.])) == pytest.approx(1 / 3)


def test_pixel_counts_are_equal_increments():
  np.testing.assert_array_equal(faithfulness.pixel_counts(4, 4), [0, 1, 2, 3, 4])
  np.testing.assert_array_equal(faithfulness.pixel_counts(10, 4), [0, 2, 5, 7, 10])
  np.testing.assert_allclose(faithfulness.fractions(4), [0, .25, .5, .75, 1])


def test_gaussian_kernel_formula():
  kernel = faithfulness.gaussian_kernel(1.)
  assert kernel.shape == (7,)  # radius ⌊3·1 + ½⌋ = 3
  assert kernel.sum() == pytest.approx(1.)
  np.testing.assert_allclose(kernel[4:] / kernel[3:-1], np.exp(-.5 * np.array([1, 3, 5])),
                             rtol=1e-5)  # exp(−(t+1)²/2) / exp(−t²/2) = exp(−(2t+1)/2)


@pytest.mark.parametrize('shape, sigma', [((2, 12, 10, 3), 2.), ((1, 2, 3, 1), 1.5)])
def test_blur_keeps_constants_and_totals_and_matches_scipy(shape, sigma):
  images = np.random.default_rng(0).uniform(size=shape).astype(np.float32)
  blurred = np.asarray(faithfulness.gaussian_blur(jnp.asarray(images), sigma))
  # Symmetric padding: every input pixel's weights, reflections included, sum to one, so the
  # blur keeps each channel's total Σ_ij x_ijc ...
  np.testing.assert_allclose(blurred.sum(axis=(1, 2)), images.sum(axis=(1, 2)), rtol=1e-5)
  # ... and a constant image everywhere, the border as well as the interior.
  constant = np.asarray(faithfulness.gaussian_blur(jnp.full(shape, .3, jnp.float32), sigma))
  np.testing.assert_allclose(constant, .3, rtol=1e-5)
  # The same blur as scipy's 'reflect' mode (the edge repeated), truncated at 3σ.
  expected = ndimage.gaussian_filter(images.astype(np.float64), (0, sigma, sigma, 0),
                                     mode='reflect', truncate=3.)
  np.testing.assert_allclose(blurred, expected, atol=1e-5)
  assert not np.allclose(blurred, images)


def test_ranked_order_breaks_ties_by_the_given_order():
  maps = jnp.array([[[.5, 1.], [.5, 0.]]] * 2)  # flat values (.5, 1, .5, 0)
  ties = jnp.array([[3, 2, 1, 0], [0, 1, 2, 3]])
  np.testing.assert_array_equal(faithfulness.ranked_order(maps, ties), [[1, 2, 0, 3],
                                                                        [1, 0, 2, 3]])
  constant = jnp.full((2, 2, 2), .7)
  np.testing.assert_array_equal(faithfulness.ranked_order(constant, ties), ties)


def test_random_orders_depend_on_seed_and_index_only():
  key = jax.random.key(0)
  orders = np.asarray(faithfulness.random_orders(key, jnp.array([5, 6]), 64))
  np.testing.assert_array_equal(np.sort(orders, axis=1), np.tile(np.arange(64), (2, 1)))
  np.testing.assert_array_equal(
      orders[1], faithfulness.random_orders(key, jnp.array([6]), 64)[0])  # another batch
  assert not np.array_equal(orders[0], orders[1])
  assert not np.array_equal(
      orders, faithfulness.random_orders(jax.random.key(1), jnp.array([5, 6]), 64))


@pytest.mark.parametrize('deletion_value', [0., .5])
def test_deletion_curve_of_a_linear_model_by_hand(tmp_path, deletion_value):
  # Weights (and map) [[1, 3], [4, 2]]: pixels ranked (1,0), (0,1), (1,1), (0,0). On a white
  # image the evidence is 10; deleting pixels of weights 4, 3, 2, 1 in turn, each to v, leaves
  # 10 − (1 − v)·(0, 4, 7, 9, 10).
  module = LinearEvidence(weights=((1., 3.), (4., 2.)))
  run = toy_run(module, (2, 2, 1), 2, tmp_path, maps='map')
  config = _config(maps=('attention',), steps=4, deletion_value=deletion_value)
  curves = faithfulness.curve_function(run, 'attention', config)(
      run.arrays, np.full((1, 2, 2, 1), 255, np.uint8), np.zeros(1, np.int32), np.zeros(1))
  evidence = 10 - (1 - deletion_value) * np.array([0, 4, 7, 9, 10])
  np.testing.assert_allclose(curves['deletion'][0], _sigmoid(evidence), rtol=1e-5)
  # The blur of a white image is white, so insertion never changes the probability.
  np.testing.assert_allclose(curves['insertion'][0], _sigmoid([10] * 5), rtol=1e-5)


def _region_run(tmp_path):
  """8×8 images whose class-0 evidence is the mean of the top-left 4×4 quadrant:
  logits (8·mean(quadrant) − 2, 0); the learned map is 1 in the quadrant and 0 elsewhere."""
  weights = np.zeros((8, 8))
  weights[:4, :4] = 8 / 16
  module = LinearEvidence(weights=tuple(map(tuple, weights)), offset=2.)
  return toy_run(module, (8, 8, 1), 2, tmp_path, maps='map')


def test_perfect_map_beats_random_order(tmp_path):
  run = _region_run(tmp_path)
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (4, 8, 8, 1), dtype=np.uint8)
  images[:, :4, :4] = rng.integers(200, 256, (4, 4, 4, 1))
  config = _config(maps=('attention',), steps=8)
  arguments = (run.arrays, images, np.zeros(4, np.int32), np.arange(4))
  perfect = faithfulness.curve_function(run, 'attention', config)(*arguments)
  random = faithfulness.curve_function(run, faithfulness.RANDOM, config)(*arguments)
  auc = {(order, curve): faithfulness.area_under_curve(np.asarray(curves[curve]))
         for order, curves in (('perfect', perfect), ('random', random))
         for curve in faithfulness.CURVES}
  assert np.all(auc['perfect', 'deletion'] < auc['random', 'deletion'])
  assert np.all(auc['perfect', 'insertion'] > auc['random', 'insertion'])
  # Step 2 of 8 has changed 16 pixels, the whole quadrant: deleted to black it leaves the
  # evidence −2; put back, it restores the clean image's probability.
  np.testing.assert_allclose(perfect['deletion'][:, 2], _sigmoid([-2] * 4), rtol=1e-5)
  clean = np.max(jax.nn.softmax(run.apply(run.arrays, images / 255.)[0]), axis=-1)
  for curves in (perfect, random):
    np.testing.assert_allclose(curves['deletion'][:, 0], clean, rtol=1e-5)
    np.testing.assert_allclose(curves['insertion'][:, -1], clean, rtol=1e-5)
  np.testing.assert_allclose(perfect['insertion'][:, 2], clean, rtol=1e-5)


def test_constant_map_scores_as_the_random_order(tmp_path):
  module = TinyConvNet(num_classes=3, constant_map=True)
  run = toy_run(module, (6, 6, 3), 3, tmp_path, maps='map')
  images = np.random.default_rng(1).integers(0, 256, (3, 6, 6, 3), dtype=np.uint8)
  arguments = (run.arrays, images, np.zeros(3, np.int32), np.array([0, 7, 9]))
  config = _config(maps=('attention',), steps=6, seed=3)
  constant = faithfulness.curve_function(run, 'attention', config)(*arguments)
  random = faithfulness.curve_function(run, faithfulness.RANDOM, config)(*arguments)
  other_seed = faithfulness.curve_function(run, faithfulness.RANDOM,
                                           _config(steps=6, seed=4))(*arguments)
  for curve in faithfulness.CURVES:
    np.testing.assert_array_equal(constant[curve], random[curve])
  assert not np.allclose(random['deletion'], other_seed['deletion'])


def _synthetic_data_config() -> dict:
  return dict(name='synthetic', data_dir=None, manual_dir=None, zca=False, zca_epsilon=1e-2,
              random_crop_padding=0, random_flip=False, image_size=None, train_split='train',
              validation_split=0, synthetic_image_shape=(8, 8, 3), synthetic_num_classes=3,
              synthetic_num_train=8, synthetic_num_test=6)


def _read_csv(path) -> list[dict[str, str]]:
  with open(path) as file:
    return list(csv.DictReader(file))


def test_evaluate_run_writes_documented_results_and_files(tmp_path):
  run = toy_run(TinyConvNet(num_classes=3), (8, 8, 3), 3, tmp_path, maps='map',
                feature_layer='conv', data_config=_synthetic_data_config())
  config = faithfulness.DeletionInsertion.default_config()
  config.update(dict(maps=('gradcam', 'attention'), steps=4, batch_size=4))  # 6 = 4 + 2 padded
  results = evaluators.evaluate_run(run, 'deletion_insertion', config)

  orders = ('gradcam', 'attention', 'random')
  names = [f'{curve}_auc_{order}' for order in orders for curve in ('deletion', 'insertion')]
  assert sorted(results) == sorted(names)
  directory = tmp_path / 'eval' / 'deletion_insertion'
  with open(directory / 'results.json') as file:
    assert json.load(file)['results'] == results
  with open(directory / 'curves.png', 'rb') as file:
    assert file.read(8) == b'\x89PNG\r\n\x1a\n'

  per_example = _read_csv(directory / 'per_example.csv')
  assert list(per_example[0]) == ['example', 'label', *names]
  labels = evaluators.examples(run, config)['label']
  assert [int(row['label']) for row in per_example] == list(labels)
  assert [int(row['example']) for row in per_example] == list(range(6))
  for name in names:  # the results are means over the 6 real examples, not the padding
    assert results[name] == pytest.approx(np.mean([float(row[name]) for row in per_example]))

  points = _read_csv(directory / 'curves.csv')
  assert list(points[0]) == ['order', 'curve', 'fraction', 'mean_score']
  assert len(points) == len(orders) * 2 * (4 + 1)
  for order in orders:
    for curve in ('deletion', 'insertion'):
      rows = [row for row in points if row['order'] == order and row['curve'] == curve]
      np.testing.assert_allclose([float(row['fraction']) for row in rows], [0, .25, .5, .75, 1])
      mean_curve = np.array([float(row['mean_score']) for row in rows])
      # The AUC is linear in the curve: the mean curve's AUC is the mean AUC.
      assert faithfulness.area_under_curve(mean_curve) == pytest.approx(
          results[f'{curve}_auc_{order}'], rel=1e-5)
    by_point = {(row['curve'], float(row['fraction'])): float(row['mean_score'])
                for row in points if row['order'] == order}
    # Nothing deleted and everything inserted are both the clean image.
    assert by_point['deletion', 0.] == pytest.approx(by_point['insertion', 1.], rel=1e-5)


@pytest.mark.parametrize('field, value', [
    ('maps', ()), ('maps', ('saliency',)), ('maps', ('gradcam', 'gradcam')), ('maps', 'gradcam'),
    ('attention_level', 0), ('steps', 0), ('steps', 2.5), ('blur_sigma', 0.),
    ('blur_sigma', 'wide'), ('deletion_value', 1.5), ('deletion_value', -.1)])
def test_invalid_fields_raise_one_line_config_errors(field, value):
  with pytest.raises(ConfigError, match=f'--eval.{field}=') as error:
    faithfulness.DeletionInsertion(_config(**{field: value}))
  assert '\n' not in str(error.value)


def test_run_dependent_errors(tmp_path):
  run = toy_run(TinyConvNet(num_classes=3), (4, 4, 3), 3, tmp_path)  # no learned maps
  with pytest.raises(LptaError, match='no attention maps of its own'):
    evaluators.evaluate_run(run, 'deletion_insertion', _config(maps=('attention',), steps=4))
  with pytest.raises(ConfigError, match='--eval.steps=17 exceeds the 16 pixels'):
    evaluators.evaluate_run(run, 'deletion_insertion', _config(steps=17))


def _linear_run(tmp_path, **model_fields):
  weights = np.random.default_rng(3).uniform(.1, 1., (4, 4))
  data_config = _synthetic_data_config()
  data_config.update(synthetic_image_shape=(4, 4, 1), synthetic_num_classes=2)
  return toy_run(LinearEvidence(tuple(map(tuple, weights)), **model_fields), (4, 4, 1), 2,
                 tmp_path, maps='map', data_config=data_config), weights


def _correlation_config(**fields):
  config = faithfulness.FaithfulnessCorrelation.default_config()
  config.update(dict(batch_size=4, subsets=20, subset_size=5, map_chunk=3), **fields)
  return config


def test_subset_masks_have_the_size_and_depend_on_seed_and_index_only():
  key = jax.random.key(0)
  masks = np.asarray(faithfulness.subset_masks(key, jnp.array([3, 7]), 16, 5, 4))
  assert masks.shape == (2, 5, 16) and (masks.sum(-1) == 4).all()
  again = np.asarray(faithfulness.subset_masks(key, jnp.array([7]), 16, 5, 4))
  np.testing.assert_array_equal(again[0], masks[1])
  assert not np.array_equal(masks[0], masks[1])


def test_the_logit_drops_of_a_linear_model_are_its_evidence_on_the_subset(tmp_path):
  run, weights = _linear_run(tmp_path)
  config = _correlation_config(baseline=.25)
  images = np.random.default_rng(4).integers(0, 256, (3, 4, 4, 1)).astype(np.uint8)
  indices = jnp.arange(3)
  attributed, drops = faithfulness.subset_function(run, 'attention', config)(
      run.arrays, jnp.asarray(images), jnp.zeros(3, jnp.int32), indices)
  masks = np.asarray(faithfulness.subset_masks(jax.random.fold_in(jax.random.key(0), 1),
                                               indices, 16, 20, 5))
  pixels = images[..., 0].reshape(3, 1, 16) / 255.
  flat_weights = weights.reshape(1, 1, 16)
  # logit 0 = Σ w x: setting S to b lowers it by Σ_S w (x − b); class 0 is predicted (w, x ≥ 0).
  np.testing.assert_allclose(drops, (masks * flat_weights * (pixels - .25)).sum(-1), rtol=1e-5,
                             atol=1e-5)
  np.testing.assert_allclose(attributed, (masks * flat_weights / weights.max()).sum(-1),
                             rtol=1e-5)


def test_gradient_times_input_of_a_linear_model_is_perfectly_faithful(tmp_path):
  run, _ = _linear_run(tmp_path)
  config = _correlation_config(maps=('gradient_x_input', 'attention'))
  results = evaluators.evaluate_run(run, 'faithfulness_correlation', config)
  assert sorted(results) == ['faithfulness_correlation_attention',
                             'faithfulness_correlation_gradient_x_input',
                             'faithfulness_correlation_random']
  # Its map is w ⊙ x / max, and the drop is Σ_S w x: the correlation is 1 for every image.
  assert results['faithfulness_correlation_gradient_x_input'] == pytest.approx(1., abs=1e-5)
  # The learned map w ignores x: less faithful than w ⊙ x, and random maps less still.
  assert results['faithfulness_correlation_attention'] < 1 - 1e-3
  rows = _read_csv(tmp_path / 'eval' / 'faithfulness_correlation' / 'per_example.csv')
  assert len(rows) == 6
  for name, value in results.items():
    assert value == pytest.approx(np.mean([float(row[name]) for row in rows]))


def test_a_constant_map_has_zero_faithfulness_correlation(tmp_path):
  run = toy_run(TinyConvNet(num_classes=3, constant_map=True), (8, 8, 3), 3, tmp_path,
                maps='map', data_config=_synthetic_data_config())
  results = evaluators.evaluate_run(run, 'faithfulness_correlation',
                                    _correlation_config(maps=('attention',)))
  assert results['faithfulness_correlation_attention'] == 0.


def test_faithfulness_correlation_refuses_subsets_larger_than_the_image(tmp_path):
  run, _ = _linear_run(tmp_path)
  with pytest.raises(ConfigError, match='--eval.subset_size=17 exceeds the 16 pixels'):
    evaluators.evaluate_run(run, 'faithfulness_correlation', _correlation_config(subset_size=17))
