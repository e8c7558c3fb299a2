"""Attention-transfer, distillation and gradient losses against hand computations."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lpta import losses
from lpta.errors import ConfigError
from lpta.models import resnet


def _normal(seed, shape):
  """Standard-normal float32 test data (NumPy: no JAX random-number compilation)."""
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _activations(values_per_position, height, width):
  """[1, H, W, C] from a list of H·W channel vectors (row-major positions)."""
  return jnp.array(values_per_position, jnp.float32).reshape(1, height, width, -1)


def test_attention_map_of_a_hand_made_activation():
  # Positions (0,0), (0,1), (1,0), (1,1) with channels (1, 3), (2, 0), (0, 0), (-1, 1):
  # mean_c A² = 5, 2, 0, 1; ‖(5, 2, 0, 1)‖ = √30.
  activations = _activations([[1, 3], [2, 0], [0, 0], [-1, 1]], 2, 2)
  np.testing.assert_allclose(losses.activation_attention_map(activations),
                             [np.array([5, 2, 0, 1]) / math.sqrt(30)], rtol=1e-6)


def test_attention_map_with_p_one_and_zero_activations():
  # p = 1: mean_c |A| = 2, 1, 0, 1; ‖(2, 1, 0, 1)‖ = √6. An all-zero map stays zero.
  activations = jnp.concatenate([_activations([[1, 3], [2, 0], [0, 0], [-1, 1]], 2, 2),
                                 jnp.zeros((1, 2, 2, 2))])
  np.testing.assert_allclose(losses.activation_attention_map(activations, p=1.0),
                             [np.array([2, 1, 0, 1]) / math.sqrt(6), np.zeros(4)], rtol=1e-6)


def _student_and_teacher():
  """Two transfer points, batch 2, student and teacher channel counts differing.

  Point 0 (1×2): example 0 maps (1, 0) vs (0, 1): difference norm √2, squared mean 1; example 1
  identical maps. Point 1 (2×2): both examples (.5, .5, .5, .5) vs (1, 0, 0, 0): difference
  norm 1, squared mean 1/4.
  """
  point0_student = jnp.concatenate([_activations([[1], [0]], 1, 2), _activations([[2], [1]], 1, 2)])
  point0_teacher = jnp.concatenate([_activations([[0, 0, 0], [0, 2, 0]], 1, 2),
                                    _activations([[4, 0, 0], [2, 0, 0]], 1, 2)])
  point1_student = jnp.tile(_activations([[1], [1], [1], [1]], 2, 2), (2, 1, 1, 1))
  point1_teacher = jnp.tile(_activations([[2, 0], [0, 0], [0, 0], [0, 0]], 2, 2), (2, 1, 1, 1))
  return (point0_student, point1_student), (point0_teacher, point1_teacher)


def test_paper_form_is_half_beta_times_the_batch_mean_of_l2_norms():
  student, teacher = _student_and_teacher()
  total, per_point = losses.attention_transfer_loss(student, teacher, 'paper', beta=3.)
  expected = (3. / 2 * (math.sqrt(2) + 0) / 2, 3. / 2 * 1.)
  np.testing.assert_allclose(per_point, expected, rtol=1e-6)
  np.testing.assert_allclose(total, sum(expected), rtol=1e-6)


def test_code_form_is_beta_times_the_mean_squared_difference():
  student, teacher = _student_and_teacher()
  total, per_point = losses.attention_transfer_loss(student, teacher, 'code', beta=1000.)
  expected = (1000. * (1 + 1 + 0 + 0) / 4, 1000. * 0.25)
  np.testing.assert_allclose(per_point, expected, rtol=1e-6)
  np.testing.assert_allclose(total, sum(expected), rtol=1e-6)


@pytest.mark.parametrize('form', losses.AT_FORMS)
def test_identical_student_and_teacher_give_zero_loss_and_finite_gradients(form):
  activations = (_normal(0, (3, 4, 4, 2)), jnp.zeros((3, 2, 2, 5)))

  def loss(student):
    return losses.attention_transfer_loss(student, activations, form, beta=10.)[0]

  assert loss(activations) == 0.
  gradients = jax.grad(loss)(activations)
  assert all(np.all(np.isfinite(g)) for g in gradients)


@pytest.mark.parametrize('form', losses.AT_FORMS)
def test_no_gradient_flows_into_the_teacher(form):
  student, teacher = _student_and_teacher()
  gradients = jax.grad(
      lambda t: losses.attention_transfer_loss(student, t, form, beta=1.)[0])(teacher)
  assert all(np.all(g == 0) for g in gradients)


def test_spatial_size_mismatch_names_the_point_and_both_sizes():
  student = (jnp.zeros((2, 8, 8, 4)), jnp.zeros((2, 4, 4, 8)))
  teacher = (jnp.zeros((2, 8, 8, 16)), jnp.zeros((2, 7, 7, 32)))
  with pytest.raises(ConfigError, match='point 2: .*4×4.*7×7.*equal size'):
    losses.check_matching_maps(student, teacher)
  with pytest.raises(ConfigError, match='4×4'):
    jax.jit(lambda s, t: losses.attention_transfer_loss(s, t, 'code', 1.)[0])(student, teacher)


def test_transfer_point_count_mismatch_is_refused():
  with pytest.raises(ConfigError, match='student has 3 transfer points and the teacher 4'):
    losses.check_matching_maps([jnp.zeros((1, 2, 2, 1))] * 3, [jnp.zeros((1, 2, 2, 1))] * 4)


def test_unknown_form_is_refused():
  with pytest.raises(ConfigError, match='paper, code'):
    losses.attention_transfer_loss((), (), 'fitnets', 1.)


def _log_softmax(x):
  x = np.asarray(x, np.float64)
  return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def test_distillation_against_a_numpy_computation():
  student = np.array([[1., 2., 0.5], [0., -1., 3.]])
  teacher = np.array([[2., 0., 1.], [1., 1., 4.]])
  labels = np.array([1, 2])
  temperature, alpha = 2., 0.5
  log_p = _log_softmax(student / temperature)
  log_q = _log_softmax(teacher / temperature)
  kl = (np.exp(log_q) * (log_q - log_p)).sum(axis=1).mean()
  cross_entropy = -_log_softmax(student)[np.arange(2), labels].mean()
  expected = alpha * temperature**2 * kl + (1 - alpha) * cross_entropy
  result = losses.distillation_loss(jnp.array(student), jnp.array(teacher), jnp.array(labels),
                                    temperature, alpha)
  np.testing.assert_allclose(result, expected, rtol=1e-6)


def test_distillation_with_alpha_zero_is_cross_entropy():
  student = _normal(0, (5, 7))
  teacher = _normal(1, (5, 7))
  labels = jnp.array([0, 3, 6, 2, 2])
  expected = optax.softmax_cross_entropy_with_integer_labels(student, labels).mean()
  np.testing.assert_allclose(losses.distillation_loss(student, teacher, labels, 4., 0.),
                             expected, rtol=1e-6)


def test_distillation_with_alpha_one_is_zero_for_matching_logits():
  logits = _normal(0, (4, 10))
  assert abs(losses.distillation_loss(logits, logits, jnp.zeros(4, jnp.int32), 4., 1.)) < 1e-6


@pytest.mark.parametrize('schedule, expected', [
    ('constant', (8., 8., 8., 8.)),
    ('linear', (8., 4., 0., 0.)),
    ('cosine', (8., 4., 0., 0.)),
])
def test_decayed_beta_at_start_half_end_and_past_the_end(schedule, expected):
  beta_at = jax.jit(lambda step: losses.decayed_beta(8., step, 100, schedule))
  values = [beta_at(jnp.asarray(step)) for step in (0, 50, 100, 150)]
  np.testing.assert_allclose(values, expected, atol=1e-6)


def test_cosine_beta_at_a_quarter():
  np.testing.assert_allclose(losses.decayed_beta(8., 25, 100, 'cosine'),
                             8. * 0.5 * (1 + math.cos(math.pi / 4)), rtol=1e-6)


def _linear_classifier_loss(params, labels):
  """Per-example softmax cross-entropy of a linear classifier on flattened images."""
  def per_example_loss(images):
    logits = images.reshape(images.shape[0], -1) @ params['kernel'] + params['bias']
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  return per_example_loss


def _linear_params(seed, features=2 * 3 * 1, classes=4):
  return {'kernel': _normal(seed, (features, classes)), 'bias': _normal(seed + 100, (classes,))}


def _gradient_at(student_params, teacher_params, images, labels, beta=2.):
  student = losses.input_gradients(_linear_classifier_loss(student_params, labels), images)
  teacher = losses.input_gradients(_linear_classifier_loss(teacher_params, labels), images)
  return losses.gradient_attention_transfer_loss(student, teacher, beta)


def _images_and_labels():
  return _normal(10, (3, 2, 3, 1)), jnp.array([0, 3, 1])


def test_gradient_at_is_zero_with_finite_parameter_gradients_for_identical_networks():
  images, labels = _images_and_labels()
  params = _linear_params(0)
  assert _gradient_at(params, params, images, labels) == 0.
  gradients = jax.grad(_gradient_at)(params, params, images, labels)
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(gradients))


def test_gradient_at_value_and_double_backprop_for_different_networks():
  images, labels = _images_and_labels()
  student, teacher = _linear_params(0), _linear_params(1)
  # For a linear classifier (logits x K + b), ∂ℓ_i/∂x_i = (softmax(x_i K + b) − onehot(y_i)) Kᵀ.
  flat = images.reshape(3, -1)

  def input_gradient(params):
    return (jax.nn.softmax(flat @ params['kernel'] + params['bias'])
            - jax.nn.one_hot(labels, 4)) @ params['kernel'].T

  norms = jnp.linalg.norm(input_gradient(student) - input_gradient(teacher), axis=1)
  np.testing.assert_allclose(_gradient_at(student, teacher, images, labels),
                             2. / 2 * norms.mean(), rtol=1e-5)
  gradients = jax.grad(_gradient_at)(student, teacher, images, labels)
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(gradients))
  assert np.abs(gradients['kernel']).max() > 1e-3
  # The directional derivative agrees with a central finite difference.
  direction = _linear_params(2)
  step = 1e-2
  shifted = [_gradient_at(jax.tree.map(lambda p, d, s=s: p + s * step * d, student, direction),
                          teacher, images, labels) for s in (1., -1.)]
  analytic = sum(jnp.vdot(g, d) for g, d in zip(jax.tree.leaves(gradients),
                                                 jax.tree.leaves(direction)))
  np.testing.assert_allclose((shifted[0] - shifted[1]) / (2 * step), analytic, rtol=2e-2)


def test_input_gradient_rows_are_per_example_gradients():
  params = _linear_params(3)
  images, labels = _images_and_labels()
  batched = losses.input_gradients(_linear_classifier_loss(params, labels), images)
  for i in range(3):
    one = losses.input_gradients(_linear_classifier_loss(params, labels[i:i + 1]),
                                 images[i:i + 1])
    np.testing.assert_allclose(batched[i:i + 1], one, rtol=1e-6)


def _wrn_loss(train):
  """Per-example loss of a tiny WRN with BatchNorm in inference (False) or train (True) mode."""
  model = resnet.WideResNet(10, 0.25, 3)
  images = _normal(0, (3, 8, 8, 3))
  labels = jnp.array([0, 1, 2])
  # An 'rbg' key: threefry initialisation takes tens of seconds to compile on a CPU.
  variables = jax.jit(functools.partial(model.init, train=False))(
      jax.random.key(1, impl='rbg'), images)

  def loss_fn(batch_images, batch_labels):
    (logits, _), _ = model.apply(variables, batch_images, train=train, mutable=['batch_stats'])
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch_labels)
  return loss_fn, images, labels


@pytest.mark.parametrize('train, rows_match', [(False, True), (True, False)])
def test_batchnorm_in_train_mode_couples_the_rows_of_input_gradients(train, rows_match):
  loss_fn, images, labels = _wrn_loss(train)
  gradients = jax.jit(lambda x, y: losses.input_gradients(lambda batch: loss_fn(batch, y), x))
  batched, one = gradients(images, labels), gradients(images[:1], labels[:1])
  assert np.allclose(batched[:1], one, rtol=1e-4, atol=1e-6) == rows_match


def _mirror_sensitive_loss(images):
  """ℓ = (Σ w ⊙ x)² with weights that differ between left and right."""
  weights = jnp.arange(images[0].size, dtype=jnp.float32).reshape(images.shape[1:]) / 10
  return jnp.sum(weights * images, axis=(1, 2, 3))**2


def test_flip_symmetry_loss_is_zero_for_a_flip_invariant_network():
  images = _normal(0, (2, 3, 4, 2))

  def invariant_loss(x):
    return _mirror_sensitive_loss(x + x[:, :, ::-1])

  assert losses.flip_symmetry_loss(invariant_loss, images, beta=5.) == 0.
  assert losses.flip_symmetry_loss(_mirror_sensitive_loss, images, beta=5.) > 1e-2


def test_flip_symmetry_loss_against_the_formula():
  images = _normal(0, (2, 3, 4, 2))
  weights = jnp.arange(24, dtype=jnp.float32).reshape(3, 4, 2) / 10
  # ∂ℓ/∂x = 2 (Σ w ⊙ x) w for ℓ = (Σ w ⊙ x)².
  direct = 2 * jnp.sum(weights * images, axis=(1, 2, 3))[:, None, None, None] * weights
  mirrored_images = images[:, :, ::-1]
  mirrored = (2 * jnp.sum(weights * mirrored_images, axis=(1, 2, 3))[:, None, None, None]
              * weights)[:, :, ::-1]
  expected = 5. / 2 * jnp.linalg.norm((direct - mirrored).reshape(2, -1), axis=1).mean()
  np.testing.assert_allclose(losses.flip_symmetry_loss(_mirror_sensitive_loss, images, 5.),
                             expected, rtol=1e-5)
