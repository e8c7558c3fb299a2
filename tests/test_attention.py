"""The attention estimator: maps, scores and pooled descriptors against hand computations."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lpta.models import attention


def _apply(estimator, local_features, global_features, params=None, train=False):
  variables = estimator.init({'params': jax.random.key(0), 'dropout': jax.random.key(1)},
                             local_features, global_features, train=False)
  if params is not None:
    variables = {**variables, 'params': params}
  return estimator.apply(variables, local_features, global_features, train=train,
                         rngs={'dropout': jax.random.key(2)})


def _random_features(batch=3, height=5, width=4, channels=6, seed=0):
  local_key, global_key = jax.random.split(jax.random.key(seed))
  return (jax.random.normal(local_key, (batch, height, width, channels)),
          jax.random.normal(global_key, (batch, channels)))


@pytest.mark.parametrize('compatibility', ['pc', 'dp'])
def test_softmax_maps_are_distributions(compatibility):
  local_features, global_features = _random_features()
  result = _apply(attention.AttentionEstimator(compatibility, 'softmax'), local_features,
                  global_features)
  assert result.attention_map.shape == (3, 5, 4)
  assert np.all(result.attention_map >= 0)
  np.testing.assert_allclose(result.attention_map.sum(axis=(1, 2)), 1., rtol=1e-6)


@pytest.mark.parametrize('compatibility', ['pc', 'dp'])
def test_sigmoid_maps_lie_strictly_between_zero_and_one(compatibility):
  local_features, global_features = _random_features()
  result = _apply(attention.AttentionEstimator(compatibility, 'sigmoid'), local_features,
                  global_features)
  assert np.all(result.attention_map > 0) and np.all(result.attention_map < 1)
  np.testing.assert_allclose(result.attention_map, jax.nn.sigmoid(result.scores), rtol=1e-6)


def test_pc_scores_on_hand_made_input():
  # One example, 1×2 positions, 2 channels: l_1 = (1, 2), l_2 = (3, -1), g = (0.5, 0.5).
  local_features = jnp.array([[[[1., 2.], [3., -1.]]]])
  global_features = jnp.array([[.5, .5]])
  params = {'u': {'kernel': jnp.array([2., -1.]).reshape(1, 1, 2, 1),
                  'bias': jnp.array([0.25])}}
  result = _apply(attention.AttentionEstimator('pc', 'softmax', score_bias=True),
                  local_features, global_features, params)
  # c_i = <u, l_i + g> + b: <(2, -1), (1.5, 2.5)> + .25 = .75; <(2, -1), (3.5, -.5)> + .25 = 7.75
  np.testing.assert_allclose(result.scores, [[[.75, 7.75]]], rtol=1e-6)
  expected_map = np.exp([.75, 7.75]) / np.exp([.75, 7.75]).sum()
  np.testing.assert_allclose(result.attention_map[0, 0], expected_map, rtol=1e-6)
  expected_pooled = expected_map[0] * np.array([1., 2.]) + expected_map[1] * np.array([3., -1.])
  np.testing.assert_allclose(result.pooled[0], expected_pooled, rtol=1e-6)


def test_dp_scores_on_hand_made_input():
  local_features = jnp.array([[[[1., 2.], [3., -1.]], [[0., 0.], [-2., 4.]]]])  # 2×2 positions
  global_features = jnp.array([[2., 1.]])
  result = _apply(attention.AttentionEstimator('dp', 'sigmoid'), local_features, global_features)
  # c_i = <l_i, g>: 2 + 2 = 4, 6 - 1 = 5, 0, -4 + 4 = 0
  np.testing.assert_allclose(result.scores, [[[4., 5.], [0., 0.]]], rtol=1e-6)
  gates = 1. / (1. + np.exp(-np.array([4., 5., 0., 0.])))
  locals_flat = np.array([[1., 2.], [3., -1.], [0., 0.], [-2., 4.]])
  # sigmoid pooling is the spatial MEAN of a·l
  np.testing.assert_allclose(result.pooled[0], (gates[:, None] * locals_flat).mean(0), rtol=1e-6)


def test_softmax_is_invariant_to_the_bias_of_u():
  local_features, global_features = _random_features()
  estimator = attention.AttentionEstimator('pc', 'softmax', score_bias=True)
  variables = estimator.init(jax.random.key(0), local_features, global_features, train=False)
  shifted = jax.tree.map(lambda x: x, variables)
  shifted['params']['u']['bias'] = variables['params']['u']['bias'] + 3.
  first = estimator.apply(variables, local_features, global_features, train=False)
  second = estimator.apply(shifted, local_features, global_features, train=False)
  np.testing.assert_allclose(first.attention_map, second.attention_map, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(second.scores - first.scores, 3., rtol=1e-5)


@pytest.mark.parametrize('projection, pooled_width, parameter_names', [
    ('l_up', 8, {'project_local', 'u'}),
    ('g_down', 4, {'project_global_bn', 'project_global', 'u'}),
])
def test_width_mismatch_is_resolved_by_the_chosen_projection(projection, pooled_width,
                                                             parameter_names):
  local_features = jax.random.normal(jax.random.key(0), (2, 3, 3, 4))
  global_features = jax.random.normal(jax.random.key(1), (2, 8))
  estimator = attention.AttentionEstimator('pc', 'softmax', projection=projection)
  variables = estimator.init(jax.random.key(0), local_features, global_features, train=False)
  assert set(variables['params']) == parameter_names
  result = estimator.apply(variables, local_features, global_features, train=False)
  assert result.pooled.shape == (2, pooled_width)


def test_l_up_pools_the_projected_local_features():
  local_features = jax.random.normal(jax.random.key(0), (2, 3, 3, 4))
  global_features = jax.random.normal(jax.random.key(1), (2, 8))
  estimator = attention.AttentionEstimator('dp', 'softmax', projection='l_up')
  variables = estimator.init(jax.random.key(0), local_features, global_features, train=False)
  result = estimator.apply(variables, local_features, global_features, train=False)
  projected = nn.Conv(8, (1, 1), use_bias=False).apply(
      {'params': variables['params']['project_local']}, local_features)
  expected = jnp.einsum('bhw,bhwc->bc', result.attention_map, projected)
  np.testing.assert_allclose(result.pooled, expected, rtol=1e-5, atol=1e-6)
