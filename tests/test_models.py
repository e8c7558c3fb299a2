"""Model structure: parameter counts of the seed table and attention-map sizes (jax.eval_shape)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import ltpa
from lpta import families
from lpta.errors import ConfigError
from lpta.models import vgg

PORT = dict(projection='l_up', score_bias=False, head_preactivation=False, dropout=False,
            bn_epsilon=1e-5)
CONV_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512)


def _shapes(model, image_shape=(32, 32, 3), batch=2):
  """(variable shapes, output shapes) without computing anything."""
  return families.abstract_variables_and_outputs(model, image_shape, batch)


def _count(model, image_shape=(32, 32, 3)):
  return families.count_parameters(_shapes(model, image_shape, batch=1)[0]['params'])


def _backbone_and_fc1(in_channels=3):
  """15 convs 3×3 with bias + BN affine, then FC-1 512→512 with bias, from the layer table."""
  total, previous = 0, in_channels
  for channels in CONV_CHANNELS:
    total += 9 * previous * channels + channels + 2 * channels
    previous = channels
  return total + 512 * 512 + 512


def test_official_att3_concat_pc_parameter_count_derived_from_the_layer_table():
  classes = 100
  level1 = 2 * 512 + (512 * 256 + 256) + (256 + 1)  # g-projection BN + Linear 512→256, u with bias
  levels23 = 2 * (512 + 1)  # u with bias
  head = 2 * (256 + 512 + 512) + (1280 * classes + classes)  # BN per g_a, Linear 1280→100
  expected = _backbone_and_fc1() + level1 + levels23 + head
  assert expected == 19_971_751  # the seed table's figure
  assert _count(vgg.AttentionVGG(classes)) == expected


def test_official_att3_cifar10_parameter_count():
  assert _count(vgg.AttentionVGG(10)) == 19_856_461


@pytest.mark.parametrize('placement', ['before', 'after'])
def test_pytorch_port_parameter_counts(placement):
  assert _count(vgg.AttentionVGG(100, placement=placement, **PORT)) == 19_993_764
  assert _count(vgg.AttentionVGG(100, num_levels=0, placement=placement, **PORT)) == 19_758_756


@pytest.mark.parametrize('placement, sizes', [('before', (32, 16, 8)), ('after', (16, 8, 4))])
def test_map_sizes_before_and_after_pooling(placement, sizes):
  _, (logits, aux) = _shapes(vgg.AttentionVGG(100, placement=placement, **PORT))
  assert logits.shape == (2, 100)
  assert [m.shape for m in aux['attention_maps']] == [(2, s, s) for s in sizes]
  assert [m.shape for m in aux['attention_scores']] == [(2, s, s) for s in sizes]
  assert [p.shape for p in aux['pooled_features']] == [(2, 512)] * 3


def test_official_layout_pools_level_one_at_its_own_width():
  _, (_, aux) = _shapes(vgg.AttentionVGG(100))
  assert [p.shape[-1] for p in aux['pooled_features']] == [256, 512, 512]
  assert aux['global_features'].shape == (2, 512)


@pytest.mark.parametrize('num_levels, sizes', [(1, (8,)), (2, (16, 8)), (3, (32, 16, 8))])
def test_att1_att2_att3_use_the_last_levels(num_levels, sizes):
  _, (_, aux) = _shapes(vgg.AttentionVGG(10, num_levels=num_levels, width=.25))
  assert [m.shape[1] for m in aux['attention_maps']] == list(sizes)


def test_fashion_mnist_size_and_width_multiplier():
  model = vgg.AttentionVGG(10, width=1 / 16)
  variables, (logits, aux) = _shapes(model, image_shape=(28, 28, 1))
  assert logits.shape == (2, 10)
  assert [m.shape[1:] for m in aux['attention_maps']] == [(28, 28), (14, 14), (7, 7)]
  kernels = variables['params']['backbone']
  assert kernels['conv1']['Conv_0']['kernel'].shape == (3, 3, 1, 4)
  assert kernels['conv15']['Conv_0']['kernel'].shape == (3, 3, 32, 32)
  assert aux['global_features'].shape == (2, 32)


def test_indep_head_sums_one_classifier_per_level():
  model = vgg.AttentionVGG(10, head='indep', width=1 / 16)
  images = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3))
  variables = model.init(jax.random.key(1), images, train=False)
  assert {'classifier1', 'classifier2', 'classifier3'} <= set(variables['params'])
  logits, aux = model.apply(variables, images, train=False)
  per_level = []
  for level, descriptor in enumerate(aux['pooled_features'], start=1):
    stats = variables['batch_stats'][f'head_bn{level}']
    scale = variables['params'][f'head_bn{level}']
    normalised = (descriptor - stats['mean']) / jnp.sqrt(stats['var'] + 1e-3)
    hidden = jax.nn.relu(normalised * scale['scale'] + scale['bias'])
    dense = variables['params'][f'classifier{level}']
    per_level.append(hidden @ dense['kernel'] + dense['bias'])
  np.testing.assert_allclose(logits, sum(per_level), rtol=1e-5, atol=1e-5)


def test_baseline_vgg_has_no_attention_and_pools_to_one_pixel():
  variables, (logits, aux) = _shapes(vgg.VGG(100))
  assert logits.shape == (2, 100) and aux['attention_maps'] == ()
  # 13 convs + BN, Dense 512→512, BN, Dense 512→100
  expected = (_backbone_and_fc1() - 2 * (9 * 512 * 512 + 3 * 512) + 2 * 512 + 512 * 100 + 100)
  assert _count(vgg.VGG(100)) == expected


def test_half_precision_computes_in_bfloat16_with_float32_parameters():
  config = ltpa.get_config()
  config.model.width = 1 / 16
  model = families.create_model(config.model, 10, half_precision=True)
  variables, (logits, aux) = _shapes(model)
  assert {x.dtype for x in jax.tree.leaves(variables['params'])} == {jnp.dtype('float32')}
  assert logits.dtype == jnp.float32 and aux['global_features'].dtype == jnp.bfloat16


@pytest.mark.parametrize('field, value, message', [
    ('name', 'resnet', 'config.model.name'),
    ('num_levels', 4, 'config.model.num_levels'),
    ('compatibility', 'cosine', 'config.model.compatibility'),
    ('placement', 'during', 'config.model.placement'),
    ('width', 0., 'config.model.width'),
])
def test_bad_model_config_values_are_refused(field, value, message):
  config = ltpa.get_config().model
  config[field] = value
  with pytest.raises(ConfigError, match=message):
    families.create_model(config, 10)
