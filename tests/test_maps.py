"""lpta.maps: learned, activation and Grad-CAM maps of any model, checked on hand-made models."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lpta import families
from lpta import maps
from lpta.errors import LptaError
import toy_runs

SIZE = 8
TOP_LEFT = np.zeros((SIZE, SIZE), np.float32)
TOP_LEFT[:SIZE // 2, :SIZE // 2] = 1  # the region class 0 reads


class RegionFeatures(nn.Module):
  """Two channels: the image's first channel inside the top-left quarter, and outside it."""

  def __call__(self, images):
    return jnp.stack([images[..., 0] * TOP_LEFT, images[..., 0] * (1 - TOP_LEFT)], axis=-1)


class RegionModel(nn.Module):
  """logit 0 = Σ of the top-left quarter, logit 1 = 0.1 · Σ of the rest; aux 'map' = a learned
  map [B, 2, 2] in [0, 1] that is 1 on its top-right cell only."""

  @nn.compact
  def __call__(self, images, *, train):
    del train
    features = RegionFeatures(name='features')(images)
    logits = jnp.stack([features[..., 0].sum((1, 2)), .1 * features[..., 1].sum((1, 2))], -1)
    learned = jnp.broadcast_to(jnp.array([[0., 1.], [0., 0.]]), (images.shape[0], 2, 2))
    return logits, {'map': learned}


@pytest.fixture(name='run')
def fixture_run(tmp_path):
  return toy_runs.toy_run(RegionModel(), (SIZE, SIZE, 1), 2, tmp_path, maps='map')


def _compute(run, kind, pixels, labels, **kwargs):
  return np.asarray(maps.map_function(run, kind, **kwargs)(
      run.arrays, jnp.asarray(pixels), jnp.asarray(labels), jax.random.key(0)))


def test_feature_layer_is_the_last_spatial_output(run):
  assert maps.feature_layer(run) == 'features'


def test_gradcam_of_the_predicted_class_is_its_region_times_the_image(run):
  # α_0 = |R| / hw for the first channel and 0 for the second, so the map is ReLU(α_0 · x · 1_R),
  # divided by its maximum.
  pixels = np.random.default_rng(0).uniform(.1, 1., (3, SIZE, SIZE, 1)).astype(np.float32)
  expected = pixels[..., 0] * TOP_LEFT
  expected /= expected.max(axis=(1, 2), keepdims=True)
  computed = _compute(run, 'gradcam', pixels, [0, 0, 0])
  np.testing.assert_allclose(computed, expected, rtol=1e-5, atol=1e-6)


def test_gradcam_follows_the_target_class(run):
  pixels = np.ones((2, SIZE, SIZE, 1), np.float32)  # predicted class: 0 (16 > 0.1 · 48)
  predicted = _compute(run, 'gradcam', pixels, [1, 1])
  explained_label = _compute(run, 'gradcam', pixels, [1, 1], target='label')
  np.testing.assert_allclose(predicted, np.broadcast_to(TOP_LEFT, predicted.shape))
  np.testing.assert_allclose(explained_label, np.broadcast_to(1 - TOP_LEFT, predicted.shape),
                             rtol=1e-6)


def test_activation_map_is_the_mean_square_over_channels(run):
  pixels = np.random.default_rng(1).uniform(0, 1, (2, SIZE, SIZE, 1)).astype(np.float32)
  # (x² · 1_R + x² · (1 − 1_R)) / 2 = x² / 2, then divided by its maximum.
  expected = pixels[..., 0]**2
  expected /= expected.max(axis=(1, 2), keepdims=True)
  np.testing.assert_allclose(_compute(run, 'activation', pixels, [0, 0]), expected, rtol=1e-5)


def test_attention_maps_are_upsampled_bilinearly_and_scaled_to_unit_maximum(run):
  computed = _compute(run, 'attention', np.zeros((1, SIZE, SIZE, 1), np.float32), [0])[0]
  # A 2×2 map [[0, 1], [0, 0]] upsampled 4×: the top-right block is 1, values fall off linearly
  # across the half-pixel-centred middle; the bottom-left block is 0.
  assert computed.max() == pytest.approx(1.)
  assert (computed[:2, 6:] == 1).all() and (computed[6:, :2] == 0).all()
  np.testing.assert_allclose(computed[0, 2:6], [.125, .375, .625, .875], rtol=1e-6)


def test_attention_level_out_of_range_and_unknown_kind_are_refused(run):
  with pytest.raises(LptaError, match='level 2 does not exist'):
    maps.map_function(run, 'attention', level=2)
  with pytest.raises(LptaError, match='not a kind of map'):
    maps.map_function(run, 'saliency')


def test_a_model_without_spatial_features_has_no_gradcam(tmp_path):

  class Linear(nn.Module):

    @nn.compact
    def __call__(self, images, *, train):
      del train
      return nn.Dense(3)(images.reshape(images.shape[0], -1)), {}

  run = toy_runs.toy_run(Linear(), (4, 4, 1), 3, tmp_path)
  with pytest.raises(LptaError, match='no spatial feature map'):
    maps.map_function(run, 'gradcam')
  with pytest.raises(LptaError, match='no attention maps of its own'):
    maps.map_function(run, 'attention')


def test_a_family_whose_figure_is_not_maps_has_no_attention_maps(tmp_path):
  family = toy_runs.ToyFamily(RegionModel(), maps='map', figure_arrays_are_maps=False)
  run = toy_runs.toy_run(RegionModel(), (SIZE, SIZE, 1), 2, tmp_path, maps='map')
  run = dataclasses.replace(run, family=family)
  with pytest.raises(LptaError, match='draws no attention maps of its own'):
    maps.map_function(run, 'attention')


def test_glimpse_families_draw_locations_not_maps():
  assert not families.REGISTRY['ram'].figure_arrays_are_maps
  assert not families.REGISTRY['fine_grained_glimpse'].figure_arrays_are_maps
  assert families.REGISTRY['attention_vgg'].figure_arrays_are_maps


def test_scale_to_unit_maximum_keeps_zero_maps_zero():
  scaled = np.asarray(maps.scale_to_unit_maximum(jnp.array([[[0., 2.], [1., -1.]],
                                                            [[0., 0.], [0., 0.]]])))
  np.testing.assert_allclose(scaled, [[[0., 1.], [.5, 0.]], [[0., 0.], [0., 0.]]])
