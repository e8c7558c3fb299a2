"""Optimisers and learning-rate schedules (lpta.optimizers), against hand computations."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import ltpa
from lpta import optimizers
from test_train import constant_rate_optimizer, tiny_config


def test_step_and_multistep_schedules():
  config = ltpa.get_config().optimizer
  step = optimizers.learning_rate_schedule(config, steps_per_epoch=10, num_epochs=300)
  assert [float(step(s)) for s in (0, 249, 250, 499, 500)] == pytest.approx(
      [.1, .1, .05, .05, .025])
  config.schedule, config.decay_factor = 'multistep', .2
  multistep = optimizers.learning_rate_schedule(config, steps_per_epoch=10, num_epochs=200)
  assert [float(multistep(s)) for s in (599, 600, 1200, 1600)] == pytest.approx(
      [.1, .02, .004, .0008])
  # The official CUB schedule (VGGNet/run_expt_cubs200.sh): ×2 at 30 and 60, then ×0.5.
  config.decay_epochs, config.decay_factors = (30, 60, 90, 120), (2., 2., .5, .5)
  cub = optimizers.learning_rate_schedule(config, steps_per_epoch=10, num_epochs=320)
  assert [float(cub(s)) for s in (299, 300, 600, 900, 1200)] == pytest.approx(
      [.1, .2, .4, .2, .1])


def test_adam_first_step_moves_each_parameter_by_the_learning_rate_against_its_gradient():
  # Adam's first update is −lr · m̂ / (√v̂ + ε) = −lr · g / (|g| + ε); weight decay 2 adds 2·w.
  config = tiny_config(**{'optimizer.name': 'adam', 'optimizer.weight_decay': 2.})
  optimizer = constant_rate_optimizer(config, 0.01)
  params = {'w': jnp.array([1., -2., 0.])}
  grads = {'w': jnp.array([0.5, 1., 0.])}  # + 2·w: 2.5, −3, 0
  updates, _ = optimizer.update(grads, optimizer.init(params), params)
  # 1 − β₂ = 0.001 computed in float32 is off by up to 2⁻²⁴ / 0.001 ≈ 6e-5 relative; √ halves it.
  np.testing.assert_allclose(updates['w'], [-0.01, 0.01, 0.], rtol=3e-5)


def test_torch7_dampened_momentum_by_hand():
  # Torch7 optim.sgd, μ = 0.9, d = 0.5, lr 0.1, weight decay 1: v_1 = g_1, v_t = μ v + (1 − d) g.
  config = tiny_config(**{'optimizer.dampening': 0.5, 'optimizer.weight_decay': 1.})
  optimizer = constant_rate_optimizer(config, 0.1)
  params = {'w': jnp.array([1., -2.])}
  state = optimizer.init(params)
  velocity = np.zeros(2)
  for step, grad in enumerate([[0.5, 1.], [-1., 2.], [3., 0.]]):
    decayed = np.array(grad) + np.asarray(params['w'])
    velocity = decayed if step == 0 else 0.9 * velocity + 0.5 * decayed
    expected = np.asarray(params['w']) - 0.1 * velocity
    updates, state = optimizer.update({'w': jnp.array(grad)}, state, params)
    params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(params['w'], expected, rtol=1e-6)


def test_undamped_momentum_keeps_optax_sgd_and_its_state():
  config = tiny_config()
  assert config.optimizer.dampening == 0
  state = constant_rate_optimizer(config, 0.1).init({'w': jnp.zeros(2)})
  reference = optax.chain(optax.add_decayed_weights(5e-4),
                          optax.sgd(optax.constant_schedule(0.1), momentum=0.9)).init(
      {'w': jnp.zeros(2)})
  assert jax.tree.structure(state) == jax.tree.structure(reference)


def test_a_parameter_group_has_its_own_optimiser_rate_and_clipping():
  config = tiny_config(**{'optimizer.schedule': 'constant', 'optimizer.learning_rate': 0.1,
                          'optimizer.momentum': 0., 'optimizer.weight_decay': 0.})
  config.optimizer.groups.policy = {'name': 'adam', 'learning_rate': 0.01,
                                    'clip_global_norm': 1.}
  labels = {'policy': {'w': 'policy'}, 'rest': {'w': optimizers.DEFAULT},
            'trunk': {'w': optimizers.FROZEN}}
  optimizer = optimizers.create_optimizer(config.optimizer, steps_per_epoch=1, num_epochs=1,
                                          labels=labels)
  params = {name: {'w': jnp.ones(2)} for name in labels}
  grads = {'policy': {'w': jnp.array([30., -40.])}, 'rest': {'w': jnp.array([3., -4.])},
           'trunk': {'w': jnp.array([1., 1.])}}
  updates, _ = optimizer.update(grads, optimizer.init(params), params)
  # Adam's first step is −lr·sign(g), whatever the clipping (to norm 1: 0.6, −0.8).
  np.testing.assert_allclose(updates['policy']['w'], [-0.01, 0.01], rtol=1e-4)
  np.testing.assert_allclose(updates['rest']['w'], [-0.3, 0.4], rtol=1e-6)  # SGD, lr 0.1
  np.testing.assert_array_equal(updates['trunk']['w'], 0.)
  # Clipping alone, on SGD: a gradient of norm 50 is scaled to norm 1 before the step.
  config.optimizer.groups.policy = {'clip_global_norm': 1.}
  optimizer = optimizers.create_optimizer(config.optimizer, 1, 1, labels)
  updates, _ = optimizer.update(grads, optimizer.init(params), params)
  np.testing.assert_allclose(updates['policy']['w'], [-0.06, 0.08], rtol=1e-5)
  np.testing.assert_allclose(updates['rest']['w'], [-0.3, 0.4], rtol=1e-6)  # not clipped


@pytest.mark.parametrize('groups, message', [
    ({'head': {'learning_rate': 1.}}, 'config.optimizer.groups.head names no parameter group of '
                                      'this model; its groups: policy'),
    ({'policy': {'lr': 1.}}, 'config.optimizer.groups.policy.lr is not an optimiser field'),
    ({'policy': {'learning_rate': -1.}},
     'config.optimizer.groups.policy.learning_rate=-1.0 must be positive'),
])
def test_bad_parameter_groups_are_refused_naming_the_field(groups, message):
  config = tiny_config()
  config.optimizer.groups = groups
  with pytest.raises(optimizers.ConfigError, match=message):
    optimizers.validate(config.optimizer, ('policy',))
