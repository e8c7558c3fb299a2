"""Wide and ImageNet ResNets: parameter counts, group activation shapes, registry, BatchNorm,
pre-activation blocks."""

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
  """Trainable parameters of WRN-d-k summed block by block from the layer list (AT's cifar.py)."""
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


def _preactivation_resnet_count_from_blocks(stage_sizes, num_classes):
  """Parameters of the pre-activation ImageNet ResNet summed layer by layer (lpta.models.resnet's
  table, resnet-18-at-export.ipynb's tensors): BatchNorms have a scale and a shift, convs no
  bias."""
  total = 7 * 7 * 3 * 64 + 2 * 64  # stem conv 7×7, 3 → 64; its BN
  previous = 64
  for group, (num_blocks, width) in enumerate(zip(stage_sizes, resnet.RESNET_GROUP_WIDTHS)):
    for block in range(num_blocks):
      in_channels = previous if block == 0 else width
      total += 2 * in_channels if group or block else 0  # pre-activation BN (group0.block0: none)
      total += 9 * in_channels * width + 2 * width + 9 * width * width  # conv, BN, conv
      total += in_channels * width if group and not block else 0  # 1×1 stride-2 shortcut
    previous = width
  return total + 2 * previous + previous * num_classes + num_classes  # head BN, Dense


@pytest.mark.parametrize('depth, expected', [(18, 11_687_720), (34, 21_795_880)])
def test_preactivation_resnet_parameter_counts_match_the_layer_table(depth, expected):
  """11,687,720 is the total resnet-18-at-export.ipynb prints for the AT student."""
  stage_sizes = resnet.RESNET_STAGE_SIZES[depth]
  assert _preactivation_resnet_count_from_blocks(stage_sizes, 1000) == expected
  model = families.create_model(
      ml_collections.ConfigDict({'name': 'resnet', 'depth': depth, 'preactivation': True}), 1000)
  assert _count(model, image_shape=(224, 224, 3)) == expected


def test_resnet50_bottlenecks_quadruple_the_group_widths_and_a_stride_one_stem_keeps_96_pixels():
  model = resnet.ResNet(resnet.RESNET_STAGE_SIZES[50], 120, bottleneck=True, stem_kernel_size=5,
                        stem_stride=1)
  variables, (logits, aux) = _shapes(model, (96, 96, 3))
  # 96 → max-pool 48 → 48, 24, 12, 6: the trunk's 2048×6×6 for a 96×96 glimpse
  # (Visual-Attention-Pytorch's models.py).
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


def _block_output(block, params, pixels):
  """A block with hand-set parameters and identity BatchNorm statistics applied to a [1, 1, W, 1]
  row of `pixels`; returns [W, features]."""
  stats = {name: {'mean': jnp.zeros_like(bn['bias']), 'var': jnp.ones_like(bn['bias']) - 1e-5}
           for name, bn in params.items() if name.startswith('bn')}
  x = jnp.asarray(pixels, jnp.float32).reshape(1, 1, -1, 1)
  return np.asarray(block.apply({'params': params, 'batch_stats': stats}, x, train=False))[0, 0]


def _centre(*weights):
  """A 3×3 kernel [3, 3, 1, len(weights)] that is `weights` at its centre, 0 elsewhere: a
  per-pixel scaling."""
  kernel = np.zeros((3, 3, 1, len(weights)), np.float32)
  kernel[1, 1, 0] = weights
  return jnp.asarray(kernel)


def test_preactivation_blocks_activate_their_input_and_add_it_raw():
  """By hand, per pixel x, with bn0 = x − 1 (scale 1, shift −1), conv0 = ×3, bn1 the identity,
  conv1 = ×1: z = 3·ReLU(ReLU(x − 1)) = 3·ReLU(x − 1), out = z + x, with no ReLU after the sum.
  A post-activation block would give ReLU(…) ≥ 0 at x = −2."""
  pixels = [-2., .5, 3.]
  bn = lambda shift, channels=1: {'scale': jnp.ones(channels), 'bias': jnp.full(channels, shift)}
  params = {'bn0': bn(-1.), 'conv0': {'kernel': _centre(3.)}, 'bn1': bn(0.),
            'conv1': {'kernel': _centre(1.)}}
  out = _block_output(resnet.PreActivationBlock(1, 1), params, pixels)
  np.testing.assert_allclose(out[:, 0], [-2., .5, 3 * 2 + 3.], rtol=1e-6)
  # activated_input (the ImageNet stem's output): no bn0, o1 = x, so out = 3·ReLU(x) + x.
  del params['bn0']
  out = _block_output(resnet.PreActivationBlock(1, 1, activated_input=True), params, pixels)
  np.testing.assert_allclose(out[:, 0], [-2., .5 * 3 + .5, 3 * 3 + 3.], rtol=1e-6)
  # Where the channels change, the 1×1 shortcut (weights 1 and 2) reads o1 = ReLU(x − 1), not
  # x; conv1 = 0 leaves it alone: out = (1, 2)·ReLU(x − 1).
  params = {'bn0': bn(-1.), 'conv0': {'kernel': _centre(1., 1.)}, 'bn1': bn(0., 2),
            'conv1': {'kernel': jnp.zeros((3, 3, 2, 2))},
            'shortcut': {'kernel': jnp.asarray([[[[1., 2.]]]])}}
  out = _block_output(resnet.PreActivationBlock(2, 1), params, pixels)
  np.testing.assert_allclose(out, [[0., 0.], [0., 0.], [2., 4.]], rtol=1e-6)


def test_preactivation_resnet_uses_preactivation_blocks_and_a_bn_relu_head():
  model = resnet.ResNet(resnet.RESNET_STAGE_SIZES[18], 10, preactivation=True)
  images = jnp.asarray(np.random.default_rng(0).standard_normal((2, 32, 32, 3)), jnp.float32)
  # An 'rbg' key: threefry initialisation takes tens of seconds to compile on a CPU.
  variables = jax.jit(functools.partial(model.init, train=False))(
      jax.random.key(0, impl='rbg'), images)
  params = variables['params']
  assert sorted(params['group0_block0']) == ['bn1', 'conv0', 'conv1']  # the stem's BN → ReLU
  assert sorted(params['group1_block0']) == ['bn0', 'bn1', 'conv0', 'conv1', 'shortcut']
  assert params['group1_block0']['shortcut']['kernel'].shape == (1, 1, 64, 128)
  assert sorted(params['group1_block1']) == ['bn0', 'bn1', 'conv0', 'conv1']
  assert params['head_bn']['scale'].shape == (512,)
  _, aux = model.apply(variables, images, train=False)
  # Group outputs are residual sums before any ReLU: negative somewhere, unlike post-activation.
  assert [a.shape for a in aux['group_activations']] == [
      (2, 8, 8, 64), (2, 4, 4, 128), (2, 2, 2, 256), (2, 1, 1, 512)]
  assert all(float(a.min()) < 0 for a in aux['group_activations'])


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
    (dict(name='resnet', depth=50, preactivation=True),
     r'config\.model\.preactivation=True is for the basic-block ResNet-18 and ResNet-34'),
    (dict(name='resnet', depth=18, preactivation='yes'),
     r"config\.model\.preactivation='yes' must be True"),
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
