"""RN-att2 and its baseline RN-164 (lpta.models.attention_resnet): parameter counts from the
layer table, shapes, the pre-activation unit checked by hand, and the family's registration."""

import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lpta import families
from lpta import maps
from lpta.errors import ConfigError
from lpta.models import attention_resnet
import toy_runs

SMALL = dict(depth=11, width=1 / 16)  # one unit per stage, widths 4, 8, 16 (bottlenecks 1, 2, 4)


def _shapes(model, image_shape=(32, 32, 3), batch=2):
  """(variable shapes, output shapes) without computing anything."""
  return families.abstract_variables_and_outputs(model, image_shape, batch)


def _init(model, images):
  # An 'rbg' key: threefry initialisation takes tens of seconds to compile on a CPU.
  return jax.jit(functools.partial(model.init, train=False))(jax.random.key(0, impl='rbg'),
                                                             images)


def _images(shape=(2, 32, 32, 3), seed=0):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _backbone_count(n):
  """ResNet-(9n+2) for 32×32×3 inputs, from the layer table: stem conv 3×3 3→16; per stage n
  pre-activation bottleneck units c → o (bottleneck b = o/4): BN(c), conv 1×1 c→b, BN(b),
  conv 3×3 b→b, BN(b), conv 1×1 b→o, and in the first unit a 1×1 projection c→o. Convolutions
  have no bias; a BatchNorm has a scale and a shift per channel."""
  total, previous = 9 * 3 * 16, 16
  for out in (64, 128, 256):
    b = out // 4
    for unit in range(n):
      c = previous if unit == 0 else out
      total += 2 * c + c * b + 2 * b + 9 * b * b + 2 * b + b * out
      total += c * out if unit == 0 else 0
    previous = out
  return total


def _rn164_count(classes):
  return _backbone_count(18) + 2 * 256 + (256 * classes + classes)  # BN, Dense


def _rn_att2_count(classes):
  global_branch = 2 * 256 + (9 * 256 * 256 + 256) + 2 * 256 + (256 * 256 + 256)  # conv has bias
  attention = 2 * 256 + (256 * 128 + 128) + (128 + 1) + (256 + 1)  # BN, g 256→128, u₁, u₂
  head = 2 * (128 + 256) + (384 * classes + classes)  # BN per g_a, Dense 384→classes
  return _backbone_count(18) + global_branch + attention + head


@pytest.mark.parametrize('classes, config_names', [
    (10, ('cifar10_rn164', 'cifar10_rn_att2')), (100, ('cifar100_rn164', 'cifar100_rn_att2'))])
def test_parameter_counts_equal_the_layer_table_and_the_configs_say_so(classes, config_names):
  counts = []
  for name, expected in zip(config_names, (_rn164_count(classes), _rn_att2_count(classes))):
    config = importlib.import_module(f'configs.{name}')
    model = families.create_model(config.get_config().model, classes)
    count = families.count_parameters(_shapes(model, batch=1)[0]['params'])
    assert count == expected
    assert f'{count:,}' in config.__doc__
    counts.append(count)
  assert counts == {10: [1_703_258, 2_395_484], 100: [1_726_388, 2_430_134]}[classes]


def test_full_size_shapes_of_the_stages_maps_descriptors_and_logits():
  _, stages = _shapes(attention_resnet.Backbone())
  assert [s.shape for s in stages] == [(2, 32, 32, 64), (2, 16, 16, 128), (2, 8, 8, 256)]
  _, (logits, aux) = _shapes(attention_resnet.AttentionResNet(100))
  assert logits.shape == (2, 100)
  assert [m.shape for m in aux['attention_maps']] == [(2, 16, 16), (2, 8, 8)]
  assert [m.shape for m in aux['attention_scores']] == [(2, 16, 16), (2, 8, 8)]
  assert [p.shape for p in aux['pooled_features']] == [(2, 128), (2, 256)]
  assert aux['global_features'].shape == (2, 256)
  _, (logits, aux) = _shapes(attention_resnet.PreActivationResNet(10))
  assert logits.shape == (2, 10) and aux['attention_maps'] == ()
  assert aux['global_features'].shape == (2, 256)


def test_stages_have_n_units_and_a_projection_only_in_their_first():
  params = _shapes(attention_resnet.AttentionResNet(10))[0]['params']
  backbone = params['backbone']
  assert set(backbone) == {'stem', 'stage1', 'stage2', 'stage3'}
  for stage in ('stage1', 'stage2', 'stage3'):
    assert set(backbone[stage]) == {f'unit{u}' for u in range(1, 19)}
    assert [u for u in backbone[stage] if 'shortcut' in backbone[stage][u]] == ['unit1']
  assert backbone['stem']['kernel'].shape == (3, 3, 3, 16) and 'bias' not in backbone['stem']
  first = backbone['stage2']['unit1']
  assert [first[c]['kernel'].shape for c in ('conv0', 'conv1', 'conv2', 'shortcut')] == [
      (1, 1, 64, 32), (3, 3, 32, 32), (1, 1, 32, 128), (1, 1, 64, 128)]
  assert not any('bias' in first[c] for c in ('conv0', 'conv1', 'conv2', 'shortcut'))
  assert backbone['stage3']['unit1']['shortcut']['kernel'].shape == (1, 1, 128, 256)
  assert params['global_branch']['conv']['bias'].shape == (256,)  # the official conv has one
  assert set(params) == {'backbone', 'global_branch', 'attention1', 'attention2', 'head_bn1',
                         'head_bn2', 'classifier'}


def _unit_variables(unit, x, shortcut=None):
  """Variables of `unit` with identity BatchNorms (scale 1, shift 0, mean 0, var 1), the last
  conv zero (so the residual branch adds nothing) and, if given, the shortcut kernel."""
  variables = unit.init(jax.random.key(0), x, train=False)
  params = jax.tree.map(np.array, variables['params'])
  for name in ('bn0', 'bn1', 'bn2'):
    params[name] = {'scale': np.ones_like(params[name]['scale']),
                    'bias': np.zeros_like(params[name]['bias'])}
  params['conv2']['kernel'] = np.zeros_like(params['conv2']['kernel'])
  if shortcut is not None:
    params['shortcut']['kernel'] = shortcut
  return {'params': params, 'batch_stats': variables['batch_stats']}


def test_identity_units_add_the_raw_input_and_projections_read_the_preactivated_one():
  # fb.resnet / resnet-1k-layers semantics: out = F(x) + x where the shape is kept, and
  # out = F(a) + W a with a = ReLU(BN(x)) where it changes. With F = 0 and BN the identity
  # (up to its epsilon), the first gives x, negative values included; the second ReLU(x).
  x = _images((1, 4, 4, 4))
  identity = attention_resnet.BottleneckUnit(4, 1)
  out = identity.apply(_unit_variables(identity, x), x, train=False)
  np.testing.assert_array_equal(out, x)
  assert (x < 0).any()
  projection = attention_resnet.BottleneckUnit(8, 1)
  copy_then_zeros = np.eye(4, 8, dtype=np.float32).reshape(1, 1, 4, 8)
  out = projection.apply(_unit_variables(projection, x, copy_then_zeros), x, train=False)
  np.testing.assert_allclose(out[..., :4], jax.nn.relu(x) / np.sqrt(1 + 1e-5), rtol=1e-6)
  np.testing.assert_array_equal(out[..., 4:], 0.)


def test_a_strided_unit_reads_only_even_positions_as_the_official_strided_1x1_conv():
  # The official unit strides its first 1×1 conv (and the 1×1 shortcut): odd rows and columns
  # are never read. A stride on the 3×3 conv (fb.resnet) would read them.
  unit = attention_resnet.BottleneckUnit(8, 2)
  x = _images((1, 6, 6, 4))
  variables = unit.init(jax.random.key(0), x, train=False)
  apply = jax.jit(functools.partial(unit.apply, variables, train=False))
  out = apply(x)
  assert out.shape == (1, 3, 3, 8)
  odd = x.at[:, 1::2].add(5.).at[:, :, 1::2].add(5.)
  np.testing.assert_array_equal(apply(odd), out)
  assert not np.allclose(apply(x.at[:, 2, 2].add(5.)), out)


def test_maps_are_softmax_over_stages_2_and_3_and_pool_their_outputs():
  model = attention_resnet.AttentionResNet(10, **SMALL)
  images = _images()
  variables = _init(model, images)
  (logits, aux), state = model.apply(variables, images, train=False,
                                     capture_intermediates=True, mutable=['intermediates'])
  assert logits.shape == (2, 10)
  backbone = state['intermediates']['backbone']
  for level, stage in ((0, 'stage2'), (1, 'stage3')):
    attention_map = aux['attention_maps'][level]
    np.testing.assert_allclose(attention_map.sum(axis=(1, 2)), 1., rtol=1e-5)
    local = backbone[stage]['__call__'][0]
    assert attention_map.shape == local.shape[:3]
    np.testing.assert_allclose(aux['pooled_features'][level],
                               jnp.einsum('bhw,bhwc->bc', attention_map, local), rtol=1e-4,
                               atol=1e-5)
  assert [m.shape[1:] for m in aux['attention_maps']] == [(16, 16), (8, 8)]


def test_dropout_is_drawn_in_training_only_when_the_config_asks():
  images = _images()

  def logits(dropout, key):
    model = attention_resnet.AttentionResNet(10, dropout=dropout, **SMALL)
    out, _ = model.apply(_init(model, images), images, train=True, mutable=['batch_stats'],
                         rngs={'dropout': jax.random.key(key)})
    return out[0]

  assert not np.allclose(logits(True, 1), logits(True, 2))
  np.testing.assert_array_equal(logits(False, 1), logits(False, 2))


def _model_config(name, **fields):
  config = importlib.import_module('configs.cifar100_rn_att2').get_config()
  if name == 'preact_resnet':
    config = importlib.import_module('configs.cifar100_rn_att2').baseline(config)
  config.model.update(fields)
  return config.model


@pytest.mark.parametrize('name, fields, message', [
    ('attention_resnet', dict(depth=165), r'config\.model\.depth=165 .*9n\+2'),
    ('preact_resnet', dict(depth=2), r'config\.model\.depth=2 .*9n\+2'),
    ('attention_resnet', dict(compatibility='cosine'), r'config\.model\.compatibility'),
    ('attention_resnet', dict(head='sum'), r'config\.model\.head'),
    ('preact_resnet', dict(width=0.), r'config\.model\.width'),
    ('attention_resnet', dict(first_pool_size=5), 'first_pool_size=5 applies to the VGGs'),
    ('preact_resnet', dict(junction_gradient_averaging=True), 'preact_resnet here has none'),
])
def test_bad_resnet_configs_are_refused_naming_the_field(name, fields, message):
  with pytest.raises(ConfigError, match=message):
    families.create_model(_model_config(name, **fields), 10)


def test_the_module_refuses_a_depth_that_is_not_9n_plus_2():
  with pytest.raises(ConfigError, match=r'^depth=20\.5 .*9n\+2'):
    _shapes(attention_resnet.PreActivationResNet(10, depth=20.5))
  assert attention_resnet.units_per_stage(164) == 18


def test_registry_builds_in_half_precision_and_maps_explain_the_last_stage(tmp_path):
  model = families.create_model(_model_config('attention_resnet', **SMALL), 10,
                                half_precision=True)
  variables, (logits, aux) = _shapes(model)
  assert {x.dtype for x in jax.tree.leaves(variables['params'])} == {jnp.dtype('float32')}
  assert logits.dtype == jnp.float32 and aux['attention_maps'][0].dtype == jnp.float32
  assert aux['global_features'].dtype == jnp.bfloat16

  family = families.get(_model_config('preact_resnet', **SMALL))
  assert family.feature_layer == 'backbone/stage3'
  vgg_config = importlib.import_module('configs.ltpa').get_config().model
  assert families.get(vgg_config).feature_layer == 'backbone/conv13'
  model = family.build(10, jnp.float32)
  run = toy_runs.toy_run(model, (32, 32, 3), 10, tmp_path, feature_layer=family.feature_layer,
                         variables=_init(model, _images((1, 32, 32, 3))))
  activation = maps.map_function(run, 'activation')(
      run.arrays, _images((2, 32, 32, 3)) ** 2 / 10, jnp.zeros(2, jnp.int32), jax.random.key(0))
  assert activation.shape == (2, 32, 32)
  np.testing.assert_allclose(activation.max(axis=(1, 2)), 1., rtol=1e-6)
