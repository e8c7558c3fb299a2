"""The PyTorch twins of lpta.benchmark --against=pytorch: the same networks as lpta's.

Parameter counts must be equal for every family; with lpta's parameters copied in, a twin must
compute the same logits and parameter gradients in training mode (batch statistics). Both sides
compute in float32 with different summation orders (XLA vs oneDNN), so values agree to rounding:
per layer about K·ε relative (K ≤ 9·32 terms per output here, ε = 1.2e-7, so ≤ 3.5e-5), over
about 17 layers that BatchNorm keeps at unit scale; the tolerance is 1e-4 of each array's largest
magnitude (of the largest gradient, for gradients) plus 2e-3 relative; a wrong layer is off by
O(1).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from configs import cifar100_att3, cifar100_att3_before, cifar100_vgg, fashion_mnist_wrn
from configs import imagenet_resnet, quickstart
from lpta import benchmark
from lpta import families
from lpta import pytorch_equivalents
from lpta.errors import ConfigError

_ATOL_FRACTION = 1e-4
_RTOL = 2e-3


def _narrow_port():
  config = cifar100_att3_before.get_config()
  config.model.width = 1 / 16
  return config


def _narrow_wrn():
  config = fashion_mnist_wrn.get_config()
  config.model.depth, config.model.widen_factor = 10, 1
  return config


@pytest.mark.parametrize('get_config, image_shape, num_classes', [
    (quickstart.get_config, (28, 28, 1), 10),
    (cifar100_att3.get_config, (32, 32, 3), 100),  # official: g_down, dropout, biased u
    (cifar100_att3_before.get_config, (32, 32, 3), 100),  # port: l_up, no dropout
    (cifar100_vgg.get_config, (32, 32, 3), 100),
    (fashion_mnist_wrn.get_config, (28, 28, 1), 10),
    (imagenet_resnet.get_config, (224, 224, 3), 1000),
])
def test_twins_have_the_same_parameter_count(get_config, image_shape, num_classes):
  config = get_config()
  model = families.create_model(config.model, num_classes)
  variables, _ = families.abstract_variables_and_outputs(model, image_shape)
  twin = pytorch_equivalents.build(config.model, image_shape, num_classes)
  assert (pytorch_equivalents.count_parameters(twin)
          == families.count_parameters(variables['params']))


def _assert_close(actual, expected, scale):
  actual, expected = np.asarray(actual), np.asarray(expected)
  assert actual.shape == expected.shape
  np.testing.assert_allclose(actual, expected, rtol=_RTOL, atol=_ATOL_FRACTION * scale)


def _ordered_like(tree, reference):
  if not isinstance(reference, dict):
    return tree
  return {key: _ordered_like(tree[key], value) for key, value in reference.items()}


@pytest.mark.parametrize('get_config, image_shape', [
    (quickstart.get_config, (28, 28, 1)),
    (_narrow_port, (32, 32, 3)),
    (_narrow_wrn, (28, 28, 1)),
])
def test_twins_compute_the_same_logits_and_gradients(get_config, image_shape):
  config = get_config()
  model = families.create_model(config.model, 10)
  rng = np.random.default_rng(0)
  images = rng.normal(size=(8, *image_shape)).astype(np.float32)
  labels = rng.integers(0, 10, 8)
  variables = model.init(jax.random.key(0), jnp.zeros((1, *image_shape)), train=False)

  def loss(params):
    logits = model.apply({**variables, 'params': params}, images, train=True,
                         mutable=['batch_stats'])[0][0]
    return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(8), labels]), logits

  (_, logits), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(variables['params'])
  twin = pytorch_equivalents.build(config.model, image_shape, 10)
  pytorch_equivalents.load_flax_parameters(twin, variables['params'])
  twin_logits = twin(torch.from_numpy(images).permute(0, 3, 1, 2))
  torch.nn.functional.cross_entropy(twin_logits, torch.from_numpy(labels)).backward()
  _assert_close(twin_logits.detach(), logits, scale=np.max(np.abs(logits)))
  # Conv biases before BatchNorm have a zero gradient, computed as rounding noise: the scale of
  # a gradient is the largest of the network's.
  scale = max(float(np.max(np.abs(leaf))) for leaf in jax.tree.leaves(grads))
  in_creation_order = _ordered_like(grads, variables['params'])  # jax.grad sorted the keys
  for parameter, grad in zip(twin.parameters(),
                             pytorch_equivalents.flax_leaves_in_order(in_creation_order)):
    grad = pytorch_equivalents.torch_layout(grad)
    _assert_close(parameter.grad.reshape(grad.shape), grad, scale)


def test_benchmark_against_pytorch_reports_both_sides_and_their_ratio():
  config = quickstart.get_config()
  config.batch_size = 16
  result = benchmark.benchmark_against_pytorch(config, num_steps=2, num_rounds=2)
  assert result['parameters'] == 79_609
  lpta, pytorch = result['lpta'], result['pytorch']
  assert lpta['compilations_of_train_step'] == 1
  for side in (lpta, pytorch):
    assert side['step_s_min'] <= side['step_s_median'] <= side['step_s_max']
    # images_per_s comes from the unrounded median and is rounded to 0.1 (error ≤ 0.05);
    # step_s_median is rounded to 0.1 ms, which moves 16 / median by ≤ 16 · 5e-5 / median².
    median = side['step_s_median']
    assert side['images_per_s'] == pytest.approx(16 / median, rel=0,
                                                 abs=0.05 + 16 * 5e-5 / median**2 + 1e-6)
  assert result['lpta_over_pytorch'] == pytest.approx(
      lpta['images_per_s'] / pytorch['images_per_s'], abs=0.005)


def test_a_network_without_a_twin_is_a_config_error():
  config = quickstart.get_config()
  config.model.name = 'ram'
  with pytest.raises(ConfigError, match='has no PyTorch twin'):
    pytorch_equivalents.build(config.model, (28, 28, 1), 10)
  resnet50 = imagenet_resnet.get_config().model
  resnet50.depth = 50
  with pytest.raises(ConfigError, match='depth=50 .bottleneck blocks. has no PyTorch twin'):
    pytorch_equivalents.build(resnet50, (224, 224, 3), 1000)
  for field, value in [('junction_gradient_averaging', True), ('first_pool_size', 5)]:
    variant = quickstart.get_config().model
    variant[field] = value
    with pytest.raises(ConfigError, match='junction_gradient_averaging and first_pool_size have '
                                          'no PyTorch twin'):
      pytorch_equivalents.build(variant, (28, 28, 1), 10)


@pytest.mark.parametrize('overrides, message', [
    ({'half_precision': True}, 'half_precision=False'),
    ({'optimizer.name': 'adam'}, 'optimizer.name=sgd'),
])
def test_comparisons_that_cannot_be_like_for_like_are_refused(overrides, message):
  config = quickstart.get_config()
  config.update_from_flattened_dict(overrides)
  with pytest.raises(ConfigError, match=message):
    benchmark.check_pytorch_comparison(config)
