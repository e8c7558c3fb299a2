"""Wide and ImageNet ResNets: parameter counts, group activation shapes, registry, BatchNorm."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from lpta import families
from lpta.errors import ConfigError
from lpta.models import resnet


def _shapes(model, image_shape=(32, 32, 3), batch=2):
  """(variable shapes, output shapes) without computing anything."""
  return families.abstract_variables_and_outputs(model, image_shape, batch)


def _count(model, image_shape=(32, 32, 3)):
  return families.count_parameters(_shapes(model, image_shape, batch=1)[0]['params'])


def _wrn_count_from_blocks(depth, widen_factor, num_classes):
  """Trainable parameters of WRN-d-k summed block by block from the layer list (§2.1)."""
  blocks_per_group = (depth - 4) // 6
  total = 9 * 3 * 16  # stem conv 3×3, 3 → 16, no bias
  previous = 16
  for base in (16, 32, 64):
    width = int(base * widen_factor)
    for block in range(blocks_per_group):
      in_channels = previous if block == 0 else width
      total += 2 * in_channels + 9 * in_channels * width  # BN affine, conv 3×3
      total += 2 * width + 9 * width * width  # BN affine, conv 3×3
      total += in_channels * width if in_channels != width else 0  # 1×1 shortcut conv
    previous = width
  return total + 2 * previous + previous * num_classes + num_classes  # head BN, Dense


@pytest.mark.parametrize('depth, widen_factor, expected', [
    (16, 1, 175_066), (16, 2, 691_674), (40, 1, 563_930), (40, 2, 2_243_546)])
def test_wrn_parameter_counts_match_the_seed_table_and_the_block_arithmetic(
    depth, widen_factor, expected):
  assert _wrn_count_from_blocks(depth, widen_factor, 10) == expected
  assert _count(resnet.WideResNet(depth, widen_factor, 10)) == expected


@pytest.mark.parametrize('depth, expected', [(18, 11_689_512), (34, 21_797_672),
                                             (50, 25_557_032)])
def test_imagenet_resnet_parameter_counts_equal_torchvision(depth, expected):
  model = families.get(ml_collections.ConfigDict({'name': 'resnet', 'depth': depth})).build(
      1000, jnp.float32)
  assert _count(model, image_shape=(224, 224, 3)) == expected


def test_resnet50_bottlenecks_quadruple_the_group_widths_and_a_stride_one_stem_keeps_96_pixels():
  model = resnet.ResNet(resnet.RESNET_STAGE_SIZES[50], 120, bottleneck=True, stem_kernel_size=5,
                        stem_stride=1)
  variables, (logits, aux) = _shapes(model, (96, 96, 3))
  # 96 → max-pool 48 → 48, 24, 12, 6: the trunk's 2048×6×6 for a 96×96 glimpse (seed §3.2).
  assert [a.shape for a in aux['group_activations']] == [
      (2, 48, 48, 256), (2, 24, 24, 512), (2, 12, 12, 1024), (2, 6, 6, 2048)]
  assert logits.shape == (2, 120)
  assert variables['params']['stem']['kernel'].shape == (5, 5, 3, 64)


@pytest.mark.parametrize('widen_factor', [1, 2])
def test_wrn_group_activations_on_cifar_inputs(widen_factor):
  _, (logits, aux) = _shapes(resnet.WideResNet(16, widen_factor, 100), (32, 32, 3))
  assert logits.shape == (2, 100) and logits.dtype == jnp.float32
  k = widen_factor
  assert [a.shape for a in aux['group_activations']] == [
      (2, 32, 32, 16 * k), (2, 16, 16, 32 * k), (2, 8, 8, 64 * k)]
  assert set(aux) == {'group_activations'}


def test_wrn_group_activations_on_fashion_mnist_inputs():
  _, (logits, aux) = _shapes(resnet.WideResNet(16, 1, 10), (28, 28, 1))
  assert logits.shape == (2, 10)
  assert [a.shape for a in aux['group_activations']] == [
      (2, 28, 28, 16), (2, 14, 14, 32), (2, 7, 7, 64)]


def test_resnet18_group_activations_on_imagenet_inputs():
  _, (logits, aux) = _shapes(resnet.ResNet(resnet.RESNET_STAGE_SIZES[18], 1000), (224, 224, 3))
  assert logits.shape == (2, 1000)
  assert [a.shape for a in aux['group_activations']] == [
      (2, 56, 56, 64), (2, 28, 28, 128), (2, 14, 14, 256), (2, 7, 7, 512)]
  assert set(aux) == {'group_activations'}


def test_wrn_shortcut_convolutions_only_where_channels_change():
  variables, _ = _shapes(resnet.WideResNet(16, 1, 10), (32, 32, 3))
  params = variables['params']
  assert 'shortcut' not in params['group0_block0']  # 16 → 16, stride 1: identity
  assert params['group1_block0']['shortcut']['kernel'].shape == (1, 1, 16, 32)
  assert 'shortcut' not in params['group1_block1']
  assert params['stem']['kernel'].shape == (3, 3, 3, 16)
  assert 'bias' not in params['stem']


def _model_config(**fields):
  return ml_collections.ConfigDict(fields)


def test_registry_builds_both_networks_in_half_precision():
  wrn = families.create_model(_model_config(name='wrn', depth=16, widen_factor=2), 10,
                            half_precision=True)
  variables, (logits, aux) = _shapes(wrn, (32, 32, 3))
  assert _count(wrn) == 691_674
  assert {x.dtype for x in jax.tree.leaves(variables['params'])} == {jnp.dtype('float32')}
  assert logits.dtype == jnp.float32
  assert aux['group_activations'][0].dtype == jnp.bfloat16
  imagenet = families.create_model(_model_config(name='resnet', depth=34), 1000)
  assert _count(imagenet, image_shape=(64, 64, 3)) == 21_797_672


@pytest.mark.parametrize('fields, message', [
    (dict(name='wrn', depth=15, widen_factor=1), r'config\.model\.depth=15 .*6n\+4'),
    (dict(name='wrn', depth=4, widen_factor=1), r'config\.model\.depth=4 .*6n\+4'),
    (dict(name='wrn', depth=16, widen_factor=0.05), r'config\.model\.widen_factor=0\.05'),
    (dict(name='resnet', depth=101), r'config\.model\.depth=101 .*18, 34, 50'),
    (dict(name='wrn', depth=16), r'needs config\.model\.widen_factor'),
])
def test_bad_resnet_configs_are_refused(fields, message):
  with pytest.raises(ConfigError, match=message):
    families.create_model(_model_config(**fields), 10)


def test_wrn_module_refuses_a_depth_that_is_not_6n_plus_4():
  with pytest.raises(ConfigError, match='6n\\+4'):
    _shapes(resnet.WideResNet(20, 1, 10), (32, 32, 3))


def test_wrn_train_step_updates_batch_statistics_with_momentum_point_nine():
  model = resnet.WideResNet(10, 0.25, 10)
  images = jnp.asarray(np.random.default_rng(0).standard_normal((4, 8, 8, 3)), jnp.float32)
  # An 'rbg' key: threefry initialisation takes tens of seconds to compile on a CPU.
  variables = jax.jit(functools.partial(model.init, train=False))(
      jax.random.key(1, impl='rbg'), images)
  (logits, _), updates = jax.jit(functools.partial(model.apply, train=True,
                                                   mutable=['batch_stats']))(variables, images)
  assert logits.shape == (4, 10)
  # The first BatchNorm normalises the stem convolution's output.
  stem = jax.lax.conv_general_dilated(images, variables['params']['stem']['kernel'], (1, 1),
                                      ((1, 1), (1, 1)),
                                      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  first_bn = updates['batch_stats']['group0_block0']['bn0']
  np.testing.assert_allclose(first_bn['mean'], 0.1 * stem.mean(axis=(0, 1, 2)), rtol=1e-4,
                             atol=1e-6)
  assert np.all(np.abs(first_bn['mean']) > 0)
  unchanged = jax.tree.map(lambda a, b: bool(np.all(a == b)), variables['batch_stats'],
                           updates['batch_stats'])
  assert not any(jax.tree.leaves(unchanged))
