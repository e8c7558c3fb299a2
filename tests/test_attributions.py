"""lpta.attributions and the CAM variants of lpta.maps, checked against hand computations on
hand-made models."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lpta import attributions
from lpta import maps
from test_maps import SIZE, TOP_LEFT, RegionModel
import toy_runs


class PolynomialModel(nn.Module):
  """logit 0 = Σ_R (x² + x³) over the top-left quarter R, logit 1 = Σ tanh(x) outside it."""

  @nn.compact
  def __call__(self, images, *, train):
    del train
    x = images[..., 0]
    inside = jnp.sum((x**2 + x**3) * TOP_LEFT, axis=(1, 2))
    outside = jnp.sum(jnp.tanh(3 * x) * (1 - TOP_LEFT), axis=(1, 2))
    return jnp.stack([inside, outside], -1), {}


class WeightedPixels(nn.Module):
  """logit 0 = Σ_ij w_ij x_ij with fixed weights w (given), logit 1 = 0."""
  weights: np.ndarray

  @nn.compact
  def __call__(self, images, *, train):
    del train
    total = jnp.sum(images[..., 0] * self.weights, axis=(1, 2))
    return jnp.stack([total, jnp.zeros_like(total)], -1), {}


def _pixels(seed, count=2):
  return jnp.asarray(np.random.default_rng(seed).uniform(.1, 1., (count, SIZE, SIZE, 1)),
                     jnp.float32)


def _attribute(run, method, pixels, classes, **settings):
  function = attributions.attribution_function(run, method, attributions.Settings(**settings))
  return np.asarray(jax.jit(function)(run.arrays, pixels, jnp.asarray(classes),
                                      jax.random.key(0)))


def test_integrated_gradients_is_complete_exactly_when_the_quadrature_is(tmp_path):
  run = toy_runs.toy_run(PolynomialModel(), (SIZE, SIZE, 1), 2, tmp_path)
  pixels, classes = _pixels(0), jnp.array([0, 0])
  # Along the path α·x the integrand of logit 0 is Σ x · (2αx + 3α²x²), of degree 2 in α:
  # n-node Gauss–Legendre is exact up to degree 2n − 1, so 2 nodes are, 1 node is not.
  x = np.asarray(pixels[..., 0])
  difference = np.sum((x**2 + x**3) * TOP_LEFT, axis=(1, 2))  # f(x) − f(0)
  for steps, exact in ((1, False), (2, True), (3, True)):
    settings = attributions.Settings(steps=steps)
    values = attributions.integrated_gradients(run, run.arrays, pixels, classes, None, settings)
    error = np.asarray(attributions.completeness_error(run, run.arrays, pixels, classes, None,
                                                       values, settings))
    np.testing.assert_allclose(error, np.abs(np.asarray(values).sum(axis=(1, 2, 3)) - difference),
                               rtol=1e-4, atol=1e-5)
    # float32 sums of 16 terms of size ≤ 2: rounding ≤ 1e-5; the 1-node (midpoint) error is
    # Σ_R x³ / 4 ≥ 16 · 0.1³ / 4: it misses 1/4 of ∫₀¹ 3α² dα = 1.
    if exact:
      assert (error < 1e-5).all(), steps
    else:
      np.testing.assert_allclose(error, np.sum(x**3 * TOP_LEFT, axis=(1, 2)) / 4, rtol=1e-4)
  # A smooth non-polynomial integrand (logit 1, tanh): the error falls fast with the nodes.
  coarse, fine = (np.asarray(attributions.completeness_error(
      run, run.arrays, pixels, jnp.array([1, 1]), None,
      attributions.integrated_gradients(run, run.arrays, pixels, jnp.array([1, 1]), None,
                                        attributions.Settings(steps=steps)),
      attributions.Settings(steps=steps))) for steps in (2, 16))
  assert (fine < coarse / 100).all() and (fine < 1e-4).all()


def test_integration_in_chunks_equals_integration_at_once(tmp_path):
  run = toy_runs.toy_run(PolynomialModel(), (SIZE, SIZE, 1), 2, tmp_path)
  pixels = _pixels(1)
  at_once = _attribute(run, 'integrated_gradients', pixels, [0, 1], steps=7, chunk=7)
  for chunk in (1, 3):  # 7 nodes in chunks of 3: the last chunk is short
    np.testing.assert_allclose(
        _attribute(run, 'integrated_gradients', pixels, [0, 1], steps=7, chunk=chunk), at_once,
        rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('method', ['gradient', 'gradient_x_input', 'integrated_gradients',
                                    'smoothgrad'])
def test_every_gradient_method_gives_zero_where_the_logit_does_not_look(method, tmp_path):
  run = toy_runs.toy_run(PolynomialModel(), (SIZE, SIZE, 1), 2, tmp_path)
  # Image 0 explains logit 0 (reads the top-left quarter only), image 1 logit 1 (the rest).
  values = _attribute(run, method, _pixels(2), [0, 1], samples=4, steps=4)[..., 0]
  assert (values[0][TOP_LEFT == 0] == 0).all() and (values[1][TOP_LEFT == 1] == 0).all()
  assert (values[0][TOP_LEFT == 1] != 0).all() and (values[1][TOP_LEFT == 0] != 0).all()


def test_gradient_methods_by_hand_on_a_linear_logit(tmp_path):
  weights = np.arange(SIZE * SIZE, dtype=np.float32).reshape(SIZE, SIZE) / 10
  run = toy_runs.toy_run(WeightedPixels(weights), (SIZE, SIZE, 1), 2, tmp_path)
  pixels = _pixels(3)
  gradient = _attribute(run, 'gradient', pixels, [0, 0])
  np.testing.assert_allclose(gradient[..., 0], np.broadcast_to(weights, (2, SIZE, SIZE)))
  # Noise does not move the gradient of a linear logit, and IG of a linear logit from black is
  # gradient × input.
  np.testing.assert_allclose(_attribute(run, 'smoothgrad', pixels, [0, 0], noise=.5, samples=5),
                             gradient, rtol=1e-6)
  np.testing.assert_allclose(_attribute(run, 'gradient_x_input', pixels, [0, 0]),
                             np.asarray(pixels) * gradient, rtol=1e-6)
  np.testing.assert_allclose(_attribute(run, 'integrated_gradients', pixels, [0, 0], steps=3),
                             np.asarray(pixels) * gradient, rtol=1e-5)


def test_occlusion_ranks_the_pixels_the_logit_weighs_most_first(tmp_path):
  weights = np.zeros((SIZE, SIZE), np.float32)
  heavy = [(1, 6), (5, 2), (7, 7)]  # weights 3, 2, 1
  for value, (row, column) in zip((3., 2., 1.), heavy):
    weights[row, column] = value
  run = toy_runs.toy_run(WeightedPixels(weights), (SIZE, SIZE, 1), 2, tmp_path)
  pixels = jnp.ones((1, SIZE, SIZE, 1))
  # 1-pixel windows: the drop of each pixel is its own weight.
  single = _attribute(run, 'occlusion', pixels, [0], window=1, stride=1)[0, ..., 0]
  np.testing.assert_allclose(single, weights)
  order = np.argsort(-single.ravel())[:3]
  assert [divmod(int(index), SIZE) for index in order] == heavy
  # 2 × 2 windows every 2 pixels tile the image: each pixel gets its window's total weight.
  tiled = _attribute(run, 'occlusion', pixels, [0], window=2, stride=2)[0, ..., 0]
  expected = np.kron(weights.reshape(4, 2, 4, 2).sum(axis=(1, 3)), np.ones((2, 2)))
  np.testing.assert_allclose(tiled, expected)
  # Overlapping 2 × 2 windows every pixel: (1, 6) is in 4 windows, each losing 3 and at most
  # nothing else, so it keeps the mean 3; a pixel far from every weight gets 0.
  overlapping = _attribute(run, 'occlusion', pixels, [0], window=2, stride=1)[0, ..., 0]
  assert overlapping[1, 6] == pytest.approx(3.) and overlapping[3, 4] == 0


def test_occlusion_windows_fit_the_image():
  masks = attributions.occlusion_windows(5, 4, window=2, stride=2)
  assert masks.shape == (2 * 2, 5, 4)  # rows 0, 2 and columns 0, 2: the last row is uncovered
  assert masks.sum(axis=0)[4].sum() == 0 and masks.sum() == 4 * 4


def test_gradcam_plus_plus_weights_by_hand():
  # One channel, two positions: g = (1, 2), A = (3, 1), Σ A = 4.
  # α = 1 / (2 + 4 · 1) = 1/6 and 4 / (2 · 4 + 4 · 8) = 1/10; w = 1/6 · 1 + 1/10 · 2.
  gradients = jnp.array([[[[1.], [2.]]]])
  features = jnp.array([[[[3.], [1.]]]])
  weight = maps.gradcam_plus_plus_weights(gradients, features)
  assert weight.shape == (1, 1, 1, 1)
  assert float(weight[0, 0, 0, 0]) == pytest.approx(1 / 6 + 2 / 10, rel=1e-6)
  # A negative or zero gradient adds nothing (ReLU, and α = 0 where g = 0).
  assert float(maps.gradcam_plus_plus_weights(jnp.array([[[[-1.], [0.]]]]), features).sum()) == 0
  assert maps.gradcam_weights(gradients, features)[0, 0, 0, 0] == pytest.approx(1.5)


def test_gradcam_plus_plus_of_a_region_logit_is_the_region(tmp_path):
  run = toy_runs.toy_run(RegionModel(), (SIZE, SIZE, 1), 2, tmp_path, maps='map')
  pixels = _pixels(4, 3)
  # g = 1 on channel 0 and 0 on channel 1 for class 0: w_0 > 0, w_1 = 0, the map is x · 1_R.
  expected = np.asarray(pixels[..., 0]) * TOP_LEFT
  expected /= expected.max(axis=(1, 2), keepdims=True)
  computed = maps.map_function(run, 'gradcam_plus_plus')(run.arrays, pixels, jnp.zeros(3, int),
                                                         jax.random.key(0))
  np.testing.assert_allclose(np.asarray(computed), expected, rtol=1e-5, atol=1e-6)


def test_score_cam_by_hand(tmp_path):
  run = toy_runs.toy_run(RegionModel(), (SIZE, SIZE, 1), 2, tmp_path, maps='map')
  pixels = np.asarray(_pixels(5, 2))[..., 0]
  features = np.stack([pixels * TOP_LEFT, pixels * (1 - TOP_LEFT)], -1)  # at the image size
  low = features.min(axis=(1, 2), keepdims=True)
  masks = (features - low) / (features.max(axis=(1, 2), keepdims=True) - low)
  expected = []
  for image, feature, mask, label in zip(pixels, features, masks, (0, 1)):
    scores = []
    for k in range(2):
      masked = image * mask[..., k]
      logits = np.array([np.sum(masked * TOP_LEFT), .1 * np.sum(masked * (1 - TOP_LEFT))])
      scores.append(np.exp(logits[label]) / np.exp(logits).sum())
    cam = np.maximum(feature @ np.array(scores), 0)
    expected.append(cam / cam.max())
  computed = maps.map_function(run, 'score_cam', target='label',
                               settings=attributions.Settings(chunk=1))(
                                   run.arrays, jnp.asarray(pixels[..., None]), jnp.array([0, 1]),
                                   jax.random.key(0))
  np.testing.assert_allclose(np.asarray(computed), np.stack(expected), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('kind', [*attributions.METHODS, 'gradcam_plus_plus', 'score_cam'])
def test_every_new_kind_gives_unit_maximum_maps_at_the_image_size(kind, tmp_path):
  run = toy_runs.toy_run(PolynomialModel(), (SIZE, SIZE, 1), 2, tmp_path)
  if kind in maps.CAM_KINDS:
    run = toy_runs.toy_run(RegionModel(), (SIZE, SIZE, 1), 2, tmp_path, maps='map')
  computed = np.asarray(maps.map_function(run, kind, settings=attributions.Settings(
      steps=4, samples=4))(run.arrays, _pixels(6), jnp.zeros(2, int), jax.random.key(0)))
  assert computed.shape == (2, SIZE, SIZE) and computed.dtype == np.float32
  np.testing.assert_allclose(computed.max(axis=(1, 2)), 1., rtol=1e-6)
  assert computed.min() >= 0
