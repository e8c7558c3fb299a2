"""The glimpse sensor, RAM and its hybrid loss: patches against hand-cut pixels, the gradient paths
of each loss term, Monte-Carlo evaluation."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import ram as ram_config
from lpta import families
from lpta import losses
from lpta import objectives
from lpta.errors import ConfigError
from lpta.families import glimpse as glimpse_family
from lpta.models import glimpse
from lpta.models import ram


def hand_glimpse(image, centre_xy, patch_size, num_scales, scale_factor):
  """The definition, pixel by pixel: patch j has side p·f^j and top-left pixel
  round(centre − side/2); pixels off the image are 0; blocks of f^j × f^j are averaged."""
  height, width, channels = image.shape
  patches = []
  for scale in range(num_scales):
    side, factor = patch_size * scale_factor**scale, scale_factor**scale
    top = int(np.round(centre_xy[1] - side / 2))
    left = int(np.round(centre_xy[0] - side / 2))
    window = np.zeros((side, side, channels))
    for row in range(side):
      for column in range(side):
        if 0 <= top + row < height and 0 <= left + column < width:
          window[row, column] = image[top + row, left + column]
    pooled = np.zeros((patch_size, patch_size, channels))
    for row in range(patch_size):
      for column in range(patch_size):
        pooled[row, column] = window[row * factor:(row + 1) * factor,
                                     column * factor:(column + 1) * factor].mean((0, 1))
    patches.append(pooled)
  return np.stack(patches)


def test_patch_at_the_centre_is_the_middle_of_the_image():
  image = np.arange(64, dtype=np.float32).reshape(1, 8, 8, 1)
  patches = glimpse.glimpse(jnp.asarray(image), jnp.zeros((1, 2)), patch_size=2, num_scales=1)
  np.testing.assert_array_equal(patches[0, 0, ..., 0], image[0, 3:5, 3:5, 0])


def test_x_is_the_column_and_y_the_row_growing_downwards():
  image = np.arange(64, dtype=np.float32).reshape(1, 8, 8, 1)
  # (x, y) = (−0.5, 0.25) is the point (2, 5) in pixels: columns 1..2, rows 4..5.
  patches = glimpse.glimpse(jnp.asarray(image), jnp.array([[-0.5, 0.25]]), 2, 1)
  np.testing.assert_array_equal(patches[0, 0, ..., 0], [[33, 34], [41, 42]])


def test_patch_over_the_corner_is_zero_outside_the_image():
  image = np.arange(1, 65, dtype=np.float32).reshape(1, 8, 8, 1)
  # The top-right corner (x, y) = (1, −1): a 4×4 patch centred at pixel point (8, 0).
  patch = glimpse.glimpse(jnp.asarray(image), jnp.array([[1., -1.]]), 4, 1)[0, 0, ..., 0]
  expected = np.zeros((4, 4))
  expected[2:, :2] = image[0, :2, 6:, 0]
  np.testing.assert_array_equal(patch, expected)


def test_locations_beyond_the_image_are_clipped_to_its_border():
  images = jax.random.uniform(jax.random.key(0), (1, 10, 10, 1))
  far = glimpse.glimpse(images, jnp.array([[3., -7.]]), 2, 2)
  border = glimpse.glimpse(images, jnp.array([[1., -1.]]), 2, 2)
  np.testing.assert_array_equal(far, border)


@pytest.mark.parametrize('location', [(0., 0.), (0.37, -0.81), (-1., 1.), (0.95, 0.9),
                                      (-0.2, -1.)])
def test_multiscale_patches_are_zero_pad_crop_and_average_pool(location):
  image = np.asarray(jax.random.uniform(jax.random.key(1), (1, 13, 11, 2)))
  patches = glimpse.glimpse(jnp.asarray(image), jnp.array([location]), patch_size=3,
                            num_scales=3, scale_factor=2)
  centre = ((location[0] + 1) / 2 * 11, (location[1] + 1) / 2 * 13)
  np.testing.assert_allclose(patches[0], hand_glimpse(image[0], centre, 3, 3, 2), rtol=1e-6,
                             atol=1e-7)


def test_flipping_image_and_location_together_flips_the_patches():
  images = jax.random.uniform(jax.random.key(2), (64, 12, 12, 1))
  # Random locations, and ones whose patch corners fall on rounding ties.
  locations = jnp.concatenate([jax.random.uniform(jax.random.key(3), (60, 2), minval=-1.2,
                                                  maxval=1.2),
                               jnp.array([[0., 0.], [1 / 12, 0.5], [-0.25, 0.], [1., -1.]])])
  mirrored_locations = locations * jnp.array([-1., 1.])
  # One scale: the crops themselves, exactly.
  crops = glimpse.glimpse(images, locations, 2, 1)
  np.testing.assert_array_equal(glimpse.glimpse(images[:, :, ::-1], mirrored_locations, 2, 1),
                                crops[:, :, :, ::-1])
  # Three scales: the mirrored blocks are averaged in another order; a mean of n <= 16 float32
  # values of [0, 1] differs by at most n rounding errors.
  patches = glimpse.glimpse(images, locations, 2, 3)
  mirrored = glimpse.glimpse(images[:, :, ::-1], mirrored_locations, 2, 3)
  np.testing.assert_allclose(mirrored, patches[:, :, :, ::-1], rtol=0, atol=16 * 2**-24)


def test_gaussian_log_probability_matches_the_hand_computation():
  # d = (0.2, −0.3), σ = 0.5: −(0.04 + 0.09)/(2·0.25) − 2·log 0.5 − log 2π.
  expected = -0.26 - 2 * math.log(0.5) - math.log(2 * math.pi)
  value = ram.gaussian_log_prob(jnp.array([0.3, -0.2]), jnp.array([0.1, 0.1]), 0.5)
  np.testing.assert_allclose(value, expected, rtol=1e-6)
  np.testing.assert_allclose(
      value, jax.scipy.stats.norm.logpdf(jnp.array([0.3, -0.2]), jnp.array([0.1, 0.1]),
                                         0.5).sum(), rtol=1e-6)


def test_reinforce_and_baseline_losses_match_their_formulas():
  log_probs = jnp.array([[-1., -2.], [-0.5, 0.]])
  baselines = jnp.array([[0.25, 0.5], [0.5, 1.]])
  rewards = jnp.array([1., 0.])
  # −mean_b Σ_t log π (R − b): b=0: −(−1·0.75 − 2·0.5) = 1.75; b=1: −(−0.5·−0.5 + 0) = −0.25.
  np.testing.assert_allclose(losses.reinforce_loss(log_probs, rewards, baselines), 0.75)
  # Logits ±log 3 and 0 are baselines 3/4, 1/4 and 1/2: the log losses −log of the probability
  # given to the reward are −log 3/4, −log 3/4 (b = 1/4 for R = 0), −log 1/2 and −log 1/2.
  logits = jnp.array([[math.log(3), 0.], [-math.log(3), 0.]])
  expected = (2 * -math.log(0.75) + 2 * -math.log(0.5)) / 4
  np.testing.assert_allclose(losses.baseline_loss(logits, rewards), expected, rtol=1e-6)
  assert losses.baseline_loss(jnp.zeros((2, 0)), rewards) == 0


def test_the_baseline_gradient_is_bounded_however_large_its_logits():
  # d/dlogit of the mean log loss is (sigmoid(logit) − R) / (B·T): at most 1/(B·T) in size,
  # where a squared error of a linear baseline, 2(b − R)/(B·T), grows with b.
  logits = jnp.array([[60., -60.], [3., -1e4]])
  rewards = jnp.array([0., 1.])
  gradient = jax.grad(losses.baseline_loss)(logits, rewards)
  expected = (jax.nn.sigmoid(logits) - rewards[:, None]) / 4
  np.testing.assert_allclose(gradient, expected, rtol=1e-6)
  np.testing.assert_allclose(gradient[0, 0], 0.25, rtol=1e-6)
  np.testing.assert_allclose(gradient[1, 1], -0.25, rtol=1e-6)


def tiny_ram_config(**overrides) -> ml_collections.ConfigDict:
  """configs/ram.py's data and optimiser around a tiny RAM with the family's (the paper's) model
  defaults: one trajectory, REINFORCE into the location network only, a random initialisation.
  The shipped recipe's model fields are tested in test_configs.py."""
  config = ram_config.get_config()
  config.model = families.default_config('ram')
  config.model.update(num_glimpses=3, patch_size=4, num_scales=2, glimpse_units=8,
                      location_units=8, glimpse_output_units=16, hidden_units=16,
                      location_std=0.2, initial_location='centre')
  config.update_from_flattened_dict(overrides)
  return config


def tiny_ram(**overrides):
  family = families.get(tiny_ram_config(**overrides).model)
  model = family.build(num_classes=5, dtype=jnp.float32)
  images = jax.random.normal(jax.random.key(4), (6, 20, 20, 1))
  variables = model.init({'params': jax.random.key(5), **family.rngs(jax.random.key(6))},
                         images, train=False)
  return family, model, variables, images


def _parts_with_gradient(grads) -> set[str]:
  """The top-level modules with a nonzero gradient."""
  return {name for name, tree in grads.items()
          if any(np.any(np.asarray(leaf) != 0) for leaf in jax.tree.leaves(tree))}


def _hybrid_terms(model, variables, images, labels, rng):
  """The HybridLoss terms (weights 1) of one training forward."""
  logits, aux = model.apply(variables, images, train=True, rngs=rng)
  student = objectives.Student(logits=logits, aux=aux, transfer_points=(), pixels=None,
                               labels=labels, step=0, num_train_steps=1, inference_loss=None)
  return glimpse_family.HybridLoss(reinforce_weight=1., baseline_weight=1.)(student, {})[1]


@pytest.mark.parametrize('core', ram.CORES)
def test_each_loss_term_reaches_only_its_part_of_ram(core):
  family, model, variables, images = tiny_ram(**{'model.core': core})
  labels = jnp.arange(6) % 5
  rngs = family.rngs(jax.random.key(7))

  def term_gradients(term):
    loss = lambda params: _hybrid_terms(model, {'params': params}, images, labels, rngs)[term]
    return _parts_with_gradient(jax.grad(loss)(variables['params']))

  assert term_gradients('classification_loss') == {'classifier', 'core', 'glimpse_network'}
  assert term_gradients('reinforce_loss') == {'location'}
  assert term_gradients('baseline_loss') == {'baseline'}


def test_several_trajectories_per_image_are_independent_samples_whose_probabilities_are_averaged():
  family, model, variables, images = tiny_ram(**{'model.train_trajectories': 3})
  rngs = family.rngs(jax.random.key(5))
  logits, aux = model.apply(variables, images, train=True, rngs=rngs)
  trajectory_logits = aux['trajectory_logits']
  assert trajectory_logits.shape == (6, 3, 5)
  assert aux['log_probs'].shape == (6, 3, 2) and aux['baseline_logits'].shape == (6, 3, 0)
  assert aux['locations'].shape == (6, 3, 2)  # [B, T, 2]: the first trajectory's 3 glimpses
  np.testing.assert_allclose(
      jax.nn.softmax(logits), jax.nn.softmax(trajectory_logits).mean(axis=1), rtol=1e-5)
  for m in (1, 2):  # each trajectory samples its own locations
    assert not np.allclose(trajectory_logits[:, 0], trajectory_logits[:, m])
  # Inference looks through one trajectory, with the same parameters.
  _, inference_aux = model.apply(variables, images, train=False, rngs=rngs)
  assert inference_aux['trajectory_logits'].shape == (6, 1, 5)
  assert 'baseline' not in variables['params']
  # REINFORCE with leave-one-out baselines reaches only the policy. The untrained model gets
  # every trajectory of an image right or wrong alike, so the rewards are set by hand.
  rewards = jnp.array([[1., 0., 0.], [0., 1., 1.]] * 3)

  def reinforce(params):
    log_probs = model.apply({'params': params}, images, train=True, rngs=rngs)[1]['log_probs']
    return losses.reinforce_loss(log_probs, rewards,
                                 losses.leave_one_out_baselines(rewards)[..., None])

  assert _parts_with_gradient(jax.grad(reinforce)(variables['params'])) == {'location'}


def test_training_samples_locations_and_inference_uses_the_means():
  family, model, variables, images = tiny_ram()
  rngs = family.rngs(jax.random.key(8))
  _, mean_aux = model.apply(variables, images, train=False, rngs=rngs)
  _, again = model.apply(variables, images, train=False, rngs=family.rngs(jax.random.key(9)))
  _, sampled = model.apply(variables, images, train=True, rngs=rngs)
  np.testing.assert_array_equal(mean_aux['locations'], again['locations'])
  np.testing.assert_array_equal(mean_aux['locations'][:, 0], 0.)  # the first glimpse: centre
  np.testing.assert_array_equal(sampled['locations'][:, 0], 0.)
  assert not np.allclose(sampled['locations'][:, 1:], mean_aux['locations'][:, 1:])
  assert mean_aux['locations'].shape == (6, 3, 2)
  assert mean_aux['log_probs'].shape == mean_aux['baseline_logits'].shape == (6, 1, 2)
  assert np.all(np.abs(sampled['locations']) <= 1)


def test_a_learned_first_location_is_the_policy_at_the_zero_state():
  family, model, variables, images = tiny_ram(**{'model.initial_location': 'learned'})
  params = variables['params']
  start = np.tanh(params['location']['mean']['bias'])  # W_μ h_0 + b with h_0 = 0
  _, mean_aux = model.apply(variables, images, train=False, rngs=family.rngs(jax.random.key(8)))
  np.testing.assert_allclose(mean_aux['locations'][:, 0], np.broadcast_to(start, (6, 2)),
                             rtol=1e-6)
  # The policy chooses all three locations: three log-probabilities and baselines each.
  assert mean_aux['log_probs'].shape == mean_aux['baseline_logits'].shape == (6, 1, 3)
  np.testing.assert_allclose(mean_aux['baseline_logits'][:, 0, 0], params['baseline']['bias'][0])
  _, sampled = model.apply(variables, images, train=True, rngs=family.rngs(jax.random.key(9)))
  first = np.asarray(sampled['locations'][:, 0])
  assert np.all(np.abs(first) < 1)  # σ = 0.2 around a start near 0: nothing was clipped
  np.testing.assert_allclose(sampled['log_probs'][:, 0, 0],
                             ram.gaussian_log_prob(first, start, 0.2), rtol=1e-5)


def test_monte_carlo_evaluation_with_one_sample_is_one_sampled_forward():
  family, model, variables, images = tiny_ram(**{'model.eval_samples': 1})
  labels = jnp.array([0, 1, 2, 3, 4, 0])
  boxes = jnp.array([[2, 3, 12, 13]] * 6)
  rng = jax.random.key(10)

  def predict(inputs, key, **kwargs):
    return model.apply(variables, inputs, train=False, rngs=family.rngs(key), **kwargs)

  outputs = family.eval_outputs(predict, images, {'label': labels, 'box': boxes}, rng)
  sampled_logits, sampled_aux = predict(images, jax.random.fold_in(rng, 0),
                                        sample_locations=True)
  np.testing.assert_array_equal(outputs['sampled_correct'],
                                np.argmax(sampled_logits, -1) == labels)
  mean_logits, mean_aux = predict(images, rng)
  np.testing.assert_array_equal(outputs['logits'], mean_logits)
  assert not np.allclose(sampled_aux['locations'], mean_aux['locations'])
  # Glimpse 1 looks at the centre (10, 10) of the 20×20 image; the object's centre is (8, 7).
  np.testing.assert_allclose(outputs['glimpse_distance_1'], math.hypot(2, 3), rtol=1e-6)


def test_random_policy_has_no_log_probability_and_ignores_the_centre():
  family, model, variables, images = tiny_ram(**{'model.policy': 'random'})
  _, aux = model.apply(variables, images, train=True, rngs=family.rngs(jax.random.key(11)))
  # No location is chosen, so there is nothing to score.
  assert aux['log_probs'].shape == aux['baseline_logits'].shape == (6, 1, 0)
  assert np.all(np.abs(aux['locations'][:, 0]) > 0)
  assert not {'location', 'baseline'} & set(variables['params'])


def _student(trajectory_logits, aux, labels):
  return objectives.Student(logits=trajectory_logits[:, 0],
                            aux={'trajectory_logits': trajectory_logits, **aux},
                            transfer_points=(), pixels=None, labels=labels, step=0,
                            num_train_steps=1, inference_loss=None)


def test_hybrid_loss_weighs_its_terms_and_rewards_correct_classifications():
  logits = jnp.array([[2., 0.], [0., 1.], [3., 0.]])  # predicts 0, 1, 0
  labels = jnp.array([0, 0, 0])  # right, wrong, right: R = 1, 0, 1
  # Baseline logits 0, 0 and log 3: b = 1/2, 1/2, 3/4.
  aux = {'log_probs': jnp.array([[[-1.]], [[-2.]], [[-3.]]]),
         'baseline_logits': jnp.array([[[0.]], [[0.]], [[math.log(3)]]])}
  student = _student(logits[:, None], aux, labels)
  loss, terms = glimpse_family.HybridLoss(reinforce_weight=0.1, baseline_weight=2.)(student, {})
  cross_entropy = objectives.cross_entropy(logits, labels).mean()
  reinforce = -(-1 * 0.5 + -2 * -0.5 + -3 * 0.25) / 3  # −mean log π (R − b)
  baseline = -(math.log(0.5) + math.log(0.5) + math.log(0.75)) / 3  # −mean log P_b(R)
  np.testing.assert_allclose(terms['classification_loss'], cross_entropy, rtol=1e-6)
  np.testing.assert_allclose(terms['reinforce_loss'], reinforce, rtol=1e-6)
  np.testing.assert_allclose(terms['baseline_loss'], baseline, rtol=1e-6)
  np.testing.assert_allclose(terms['reward'], 2 / 3, rtol=1e-6)
  np.testing.assert_allclose(loss, cross_entropy + 0.1 * reinforce + 2. * baseline, rtol=1e-6)


def test_leave_one_out_baselines_are_the_other_trajectories_mean_reward():
  rewards = jnp.array([[1., 0., 1.], [0., 0., 0.], [1., 1., 1.]])
  np.testing.assert_allclose(losses.leave_one_out_baselines(rewards),
                             [[0.5, 1., 0.5], [0., 0., 0.], [1., 1., 1.]])


def test_hybrid_loss_with_two_trajectories_uses_each_others_reward_as_baseline():
  # Image 0: trajectory 0 right, 1 wrong (advantages +1, −1); image 1: both right (0, 0).
  trajectory_logits = jnp.array([[[2., 0.], [0., 1.]], [[1., 0.], [3., 0.]]])
  labels = jnp.array([0, 0])
  aux = {'log_probs': jnp.array([[[-1., -2.], [-3., -0.5]], [[-1., -1.], [-2., -2.]]]),
         'baseline_logits': jnp.zeros((2, 2, 0))}
  loss, terms = glimpse_family.HybridLoss(reinforce_weight=0.1, baseline_weight=2.)(
      _student(trajectory_logits, aux, labels), {})
  cross_entropy = objectives.cross_entropy(
      trajectory_logits.reshape(4, 2), jnp.zeros(4, jnp.int32)).mean()
  # −mean over the 4 trajectories of Σ_t log π · A: (−3·1 + −3.5·−1 + 0 + 0) → −0.5 / 4.
  reinforce = -(-3. * 1 + -3.5 * -1) / 4
  np.testing.assert_allclose(terms['classification_loss'], cross_entropy, rtol=1e-6)
  np.testing.assert_allclose(terms['reinforce_loss'], reinforce, rtol=1e-6)
  assert terms['baseline_loss'] == 0
  np.testing.assert_allclose(terms['reward'], 3 / 4, rtol=1e-6)
  np.testing.assert_allclose(loss, cross_entropy + 0.1 * reinforce, rtol=1e-6)


@pytest.mark.parametrize('overrides, message', [
    ({'model.core': 'gru'}, 'config.model.core'),
    ({'model.num_glimpses': 0}, 'config.model.num_glimpses'),
    ({'model.location_std': 0.}, 'config.model.location_std'),
    ({'model.policy': 'greedy'}, 'config.model.policy'),
    ({'model.reinforce_weight': -1.}, 'config.model.reinforce_weight'),
    ({'model.baseline_weight': -0.5}, 'config.model.baseline_weight'),
    ({'model.eval_samples': 0}, 'config.model.eval_samples'),
    ({'model.train_trajectories': 0}, 'config.model.train_trajectories'),
    ({'model.location_hidden_units': -8}, 'config.model.location_hidden_units'),
])
def test_bad_model_values_name_the_field(overrides, message):
  with pytest.raises(ConfigError, match=message):
    families.get(tiny_ram_config(**overrides).model)


@pytest.mark.parametrize('overrides, message', [
    ({'transfer.method': 'kd'}, 'hybrid loss'),
    ({'data.name': 'fashion_mnist'}, 'object boxes'),
])
def test_ram_refuses_transfer_and_data_without_boxes(overrides, message):
  config = tiny_ram_config(**overrides)
  family = families.get(config.model)
  with pytest.raises(ConfigError, match=message):
    family.objective(config, family.build(10, jnp.float32), (60, 60, 1))


def test_object_centres_are_the_middles_of_the_boxes():
  np.testing.assert_array_equal(glimpse_family.object_centres(jnp.array([[10, 4, 38, 32]])),
                                [[18., 24.]])


def test_resized_glimpses_cut_the_sensor_windows_and_resize_any_side():
  images = jax.random.uniform(jax.random.key(12), (3, 24, 24, 2))
  locations = jnp.array([[0., 0.], [0.5, -0.25], [-1., 1.]])
  # A window of the output's side is the crop itself: the RAM sensor's first patch.
  np.testing.assert_allclose(glimpse.resized_glimpses(images, locations, (4, 8), 4)[:, 0],
                             glimpse.glimpse(images, locations, 4, 2)[:, 0], rtol=1e-6)
  # A side that is no multiple of the output (12 → 5), still zero-padded outside the image.
  constant = jnp.ones((1, 24, 24, 1))
  patches = glimpse.resized_glimpses(constant, jnp.array([[0., 0.]]), (12, 48), 5)
  assert patches.shape == (1, 2, 5, 5, 1)
  np.testing.assert_allclose(patches[0, 0], 1., rtol=1e-6)  # inside the image
  # The 48-pixel window at the centre is the 24-pixel image framed by 12 pixels of zeros.
  np.testing.assert_allclose(float(patches[0, 1].mean()), 24**2 / 48**2, rtol=0.05)
  assert float(patches[0, 1, 0, 0, 0]) < 0.01 < 0.99 < float(patches[0, 1, 2, 2, 0])


# The policy's options (issue: a policy that learns) and the controls.

def test_a_zero_initialised_location_network_looks_at_the_centre_until_trained():
  family, model, variables, images = tiny_ram(**{'model.location_init': 'zero',
                                                  'model.initial_location': 'learned'})
  kernel = variables['params']['location']['mean']['kernel']
  np.testing.assert_array_equal(kernel, 0.)
  _, aux = model.apply(variables, images, train=False, rngs=family.rngs(jax.random.key(1)))
  np.testing.assert_array_equal(aux['locations'], 0.)
  np.testing.assert_array_equal(aux['location_means'], 0.)
  np.testing.assert_array_equal(aux['location_kernel_norm'], 0.)
  # Sampled, the glimpses spread around the centre with σ = 0.2.
  _, sampled = model.apply(variables, jnp.repeat(images, 100, axis=0), train=True,
                           rngs=family.rngs(jax.random.key(2)))
  np.testing.assert_allclose(np.std(sampled['locations']), 0.2, rtol=0.1)
  # The default initialisation is not the centre.
  _, _, default, _ = tiny_ram(**{'model.initial_location': 'learned'})
  assert np.linalg.norm(default['params']['location']['mean']['kernel']) > 0.1


def test_reinforce_reaches_the_core_and_glimpse_network_only_with_policy_gradient_core():
  for policy_gradient, reached in (('policy', {'location'}),
                                   ('core', {'location', 'core', 'glimpse_network'})):
    family, model, variables, images = tiny_ram(**{'model.policy_gradient': policy_gradient})
    rngs = family.rngs(jax.random.key(7))
    rewards = jnp.array([1., 0., 1., 1., 0., 0.])

    def reinforce(params):
      log_probs = model.apply({'params': params}, images, train=True, rngs=rngs)[1]['log_probs']
      return losses.reinforce_loss(log_probs[:, 0], rewards, jnp.full((6, 1), 0.5))

    assert _parts_with_gradient(jax.grad(reinforce)(variables['params'])) == reached


def test_the_centre_control_looks_at_the_centre_and_samples_around_it():
  family, model, variables, images = tiny_ram(**{'model.policy': 'centre'})
  assert 'location' not in variables['params'] and 'baseline' not in variables['params']
  _, aux = model.apply(variables, images, train=False, rngs=family.rngs(jax.random.key(1)))
  np.testing.assert_array_equal(aux['locations'], 0.)
  assert aux['log_probs'].shape == (6, 1, 0) and aux['location_means'].shape == (6, 0, 2)
  _, sampled = model.apply(variables, jnp.repeat(images, 100, axis=0), train=True,
                           rngs=family.rngs(jax.random.key(2)))
  np.testing.assert_allclose(np.std(sampled['locations']), 0.2, rtol=0.1)  # every glimpse


def test_black_padding_fills_what_lies_off_the_image_with_its_darkest_value():
  images = np.full((2, 8, 8, 1), 3., np.float32)
  images[0, 2, 5], images[1, 6, 1] = -2., -1.  # each image's darkest pixel
  corner = jnp.array([[-1., -1.], [1., 1.]])  # a quarter of each patch lies off the image
  patches = np.asarray(glimpse.glimpse(jnp.asarray(images), corner, 4, 2, fill=jnp.array(
      [-2., -1.])))
  for index, (centre, darkest) in enumerate((((0., 0.), -2.), ((8., 8.), -1.))):
    expected = hand_glimpse(images[index] - darkest, centre, 4, 2, 2) + darkest
    np.testing.assert_allclose(patches[index], expected, rtol=1e-6)
  assert patches[0, 0, 0, 0, 0] == -2.  # off the image: the darkest value, not 0
  # The network pads so with padding 'black', and with 0 (the data mean) by default.
  for padding, fill in (('black', images.min(axis=(1, 2, 3))), ('mean', np.zeros(2))):
    network = ram.GlimpseNetwork(4, 2, 2, 3, 3, 3, padding=padding)
    variables = network.init(jax.random.key(0), jnp.asarray(images), corner)
    what = variables['params']['what']
    expected = glimpse.glimpse(jnp.asarray(images), corner, 4, 2, fill=jnp.asarray(fill))
    _, intermediates = network.apply(variables, jnp.asarray(images), corner,
                                     capture_intermediates=True, mutable=['intermediates'])
    hidden = intermediates['intermediates']['what']['__call__'][0]
    np.testing.assert_allclose(hidden, expected.reshape(2, -1) @ what['kernel'] + what['bias'],
                               rtol=1e-5, atol=1e-6)


def test_the_oracle_looks_at_the_given_object_centres_and_samples_around_them():
  family, model, variables, images = tiny_ram(**{'model.policy': 'oracle'})
  assert 'location' not in variables['params'] and 'baseline' not in variables['params']
  targets = jnp.linspace(-0.9, 0.9, 12).reshape(6, 2)
  rngs = family.rngs(jax.random.key(1))
  _, aux = model.apply(variables, images, train=False, rngs=rngs, object_locations=targets)
  np.testing.assert_array_equal(aux['locations'], jnp.repeat(targets[:, None], 3, axis=1))
  assert aux['log_probs'].shape == (6, 1, 0)
  # Sampled: every glimpse of every trajectory is the object's centre ± σ (σ = 0.2), clipped.
  many = jnp.repeat(targets, 100, axis=0)
  _, sampled = model.apply(variables, jnp.repeat(images, 100, axis=0), train=True,
                           rngs=family.rngs(jax.random.key(2)), object_locations=many)
  offsets = sampled['locations'] - many[:, None]
  inside = np.abs(np.asarray(many[:, None] + offsets)) < 0.999  # not clipped at the border
  np.testing.assert_allclose(np.std(np.asarray(offsets)[inside]), 0.2, rtol=0.1)
  with pytest.raises(ConfigError, match="policy='oracle'.*boxes"):
    model.apply(variables, images, train=False, rngs=rngs)


def test_the_glimpse_family_gives_the_oracle_the_box_centres_in_location_units():
  family = families.get(tiny_ram_config(**{'model.policy': 'oracle'}).model)
  # A 20×40 image (H × W); box (top, left, bottom, right) = (0, 0, 10, 20): centre (x, y) =
  # (10, 5) px = (10/40·2 − 1, 5/20·2 − 1) = (−0.5, −0.5).
  batch = {'image': jnp.zeros((1, 20, 40, 1), jnp.uint8), 'box': jnp.array([[0, 0, 10, 20]])}
  np.testing.assert_allclose(family.model_inputs(batch)['object_locations'], [[-0.5, -0.5]])
  assert families.get(tiny_ram_config().model).model_inputs(batch) == {}


def test_uniform_glimpses_replace_the_policy_and_silence_reinforce():
  family, model, variables, images = tiny_ram(**{'model.location_init': 'zero'})
  rngs = family.rngs(jax.random.key(3))
  many = jnp.repeat(images, 200, axis=0)
  _, warm = model.apply(variables, many, train=True, rngs=rngs, uniform_glimpses=jnp.array(True))
  _, after = model.apply(variables, many, train=True, rngs=rngs,
                         uniform_glimpses=jnp.array(False))
  _, default = model.apply(variables, many, train=True, rngs=rngs)
  # Uniform on [-1, 1]: sd 1/√3 ≈ 0.577, against σ = 0.2 around the zero policy's centre.
  chosen = np.asarray(warm['locations'][:, 1:])
  np.testing.assert_allclose(chosen.std(), 1 / math.sqrt(3), rtol=0.05)
  np.testing.assert_array_equal(warm['log_probs'], 0.)
  np.testing.assert_allclose(np.asarray(after['locations'][:, 1:]).std(), 0.2, rtol=0.1)
  np.testing.assert_array_equal(after['locations'], default['locations'])
  np.testing.assert_array_equal(after['log_probs'], default['log_probs'])


def test_the_warm_up_lasts_its_share_of_the_training_steps_and_not_into_evaluation():
  family = families.get(tiny_ram_config(**{'model.uniform_warmup': 0.25}).model)
  batch = {'image': jnp.zeros((1, 8, 8, 1), jnp.uint8)}
  assert bool(family.model_inputs(batch, jnp.asarray(0.2))['uniform_glimpses'])
  assert not bool(family.model_inputs(batch, jnp.asarray(0.25))['uniform_glimpses'])
  assert family.model_inputs(batch) == {}
  assert families.get(tiny_ram_config().model).model_inputs(batch, jnp.asarray(0.)) == {}
  with pytest.raises(ConfigError, match='config.model.uniform_warmup'):
    families.get(tiny_ram_config(**{'model.uniform_warmup': 1.}).model)
