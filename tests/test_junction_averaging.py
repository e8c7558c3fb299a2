"""model.junction_gradient_averaging: the official LTPA trainer's backward pass.

saumya-jetley/cd_ICLR18_LearnToPayAttention: VGGNet/Common_lua_source/main_AttLevel{2,3}_1global.lua
and RESNET/train_attenunit_2levels.lua.
"""

import flax.traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lpta.models import attention, attention_resnet, vgg


def test_averaged_fan_out_passes_values_and_averages_cotangents():
  def f(x):
    a, b, c = attention.averaged_fan_out(x, 3)
    return 2 * a + 3 * b + 7 * c

  assert f(1.5) == 18.
  assert jax.grad(f)(1.5) == pytest.approx((2 + 3 + 7) / 3)
  # A copy nothing reads sends back zero, which counts in the mean.
  assert jax.grad(lambda x: 4 * attention.averaged_fan_out(x, 2)[0])(1.) == 2.


@pytest.mark.parametrize('tap_after_pool', [False, True])
def test_a_tapped_map_gets_half_the_sum_of_its_two_cotangents(tap_after_pool):
  # x → block 1 (×2) → [tap] → pool (×5) → block 2 (×3): what reaches the tap is the chain's and
  # the tapped copy's cotangents, averaged with the junction and summed without.
  blocks = [lambda x: 2 * x, lambda x: 3 * x]
  pool = lambda x, index: 5 * x
  for average, scale in ((False, 1.), (True, .5)):
    def f(x, average=average):
      final, tapped = vgg.run_stack(blocks, x, (1,), (1,), tap_after_pool, pool,
                                    vgg.junction(average))
      return 7 * final + 11 * tapped[1]
    # d final/d tap = 3 (after the pool) or 15 (before it); d tapped/d tap = 1.
    chain = 3 if tap_after_pool else 15
    pooled = 5 if tap_after_pool else 1
    assert jax.grad(f)(1.) == pytest.approx(2 * pooled * scale * (7 * chain + 11))


def _gradients(module_class, images, **fields):
  """{module path: gradient of the summed logits} with averaging off and on, same parameters."""
  model = module_class(num_classes=3, **fields)
  variables = model.init(jax.random.key(0), images, train=False)
  grads = []
  for average in (False, True):
    averaged = module_class(num_classes=3, junction_gradient_averaging=average, **fields)
    loss = lambda params, m=averaged: jnp.sum(
        m.apply({**variables, 'params': params}, images, train=False)[0] * jnp.arange(1., 4.))
    grads.append(flax.traverse_util.flatten_dict(jax.grad(loss)(variables['params']), sep='/'))
  return grads


def _assert_scaled(plain, averaged, factors):
  """Every gradient under each prefix of `factors` is `factor` times the plain one. float32 sums
  the cotangents in another order, so entries agree to ~1e-5 of the layer's largest one."""
  for prefix, factor in factors.items():
    paths = [path for path in plain if path.startswith(prefix)]
    assert paths, prefix
    for path in paths:
      expected = factor * np.asarray(plain[path])
      np.testing.assert_allclose(averaged[path], expected, rtol=1e-5,
                                 atol=1e-5 * np.abs(expected).max(), err_msg=path)
      assert np.abs(expected).max() > 0, path


VGG_FIELDS = dict(width=1 / 16, dropout=False, head_preactivation=False)


def test_att1_halves_every_gradient_before_its_one_junction_and_keeps_those_after():
  # att1: conv 13's map goes on to conv 14 and to the attention module, so its cotangent and
  # everything before it is halved; g feeds one module, so nothing after conv 13 changes.
  images = jax.random.normal(jax.random.key(1), (2, 16, 16, 3))
  plain, averaged = _gradients(vgg.AttentionVGG, images, num_levels=1, **VGG_FIELDS)
  before = [f'backbone/conv{i}/' for i in range(1, 14)]
  after = ['backbone/conv14/', 'backbone/conv15/', 'global/', 'attention1/', 'classifier/']
  _assert_scaled(plain, averaged, {**dict.fromkeys(before, 0.5), **dict.fromkeys(after, 1.)})


def test_att3_divides_what_flows_into_g_by_the_three_attention_modules():
  images = jax.random.normal(jax.random.key(2), (2, 16, 16, 3))
  plain, averaged = _gradients(vgg.AttentionVGG, images, num_levels=3, **VGG_FIELDS)
  third = ['backbone/conv14/', 'backbone/conv15/', 'global/']
  same = ['attention1/', 'attention2/', 'attention3/', 'classifier/']
  _assert_scaled(plain, averaged, {**dict.fromkeys(third, 1 / 3), **dict.fromkeys(same, 1.)})


def test_rn_att2_halves_what_flows_into_g_and_keeps_the_forward_pass():
  images = jax.random.normal(jax.random.key(3), (2, 16, 16, 3))
  fields = dict(depth=11, width=1 / 16, dropout=False, head_preactivation=False)
  plain, averaged = _gradients(attention_resnet.AttentionResNet, images, **fields)
  _assert_scaled(plain, averaged, {'global_branch/': 0.5, 'attention1/': 1., 'attention2/': 1.,
                                   'classifier/': 1.})
  model = attention_resnet.AttentionResNet(num_classes=3, **fields)
  variables = model.init(jax.random.key(0), images, train=False)
  averaging = attention_resnet.AttentionResNet(num_classes=3, junction_gradient_averaging=True,
                                               **fields)
  np.testing.assert_array_equal(model.apply(variables, images, train=False)[0],
                                averaging.apply(variables, images, train=False)[0])
