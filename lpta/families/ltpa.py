"""Learn To Pay Attention (Jetley et al., ICLR 2018): attention VGGs and ResNets, their baselines.

Models (`config.model.name`) and their fields (FIELDS below, the Flax modules' docstrings):
  'attention_vgg' (lpta.models.vgg.AttentionVGG): the LTPA network, att1/att2/att3 or none;
  'vgg' (lpta.models.vgg.VGG): the baseline VGG-16;
  'attention_resnet' (RN-att2, lpta.models.attention_resnet.AttentionResNet);
  'preact_resnet' (the baseline pre-activation ResNet-164,
    lpta.models.attention_resnet.PreActivationResNet).
The figure overlays the attention maps L1..Ln: softmax maps (which sum to one, so their values
depend on the map size) min-max scaled per image, sigmoid maps (gates in (0, 1)) as they are.
"""

import jax.numpy as jnp

from lpta import config_fields as cf
from lpta import families
from lpta import summaries
from lpta.errors import ConfigError
from lpta.models import attention, attention_resnet, vgg

_COMPATIBILITY = cf.Field('compatibility', 'pc', "'pc': <u, l + g>; 'dp': <l, g>.",
                          cf.one_of(attention.COMPATIBILITIES))
_NORMALISATION = cf.Field('normalisation', 'softmax', "'softmax' over positions; 'sigmoid' "
                          'gates + average pooling.', cf.one_of(attention.NORMALISATIONS))
_PROJECTION = cf.Field('projection', 'g_down', "The local features are narrower than g: "
                       "'g_down' (official) or 'l_up' (the PyTorch port).",
                       cf.one_of(attention.PROJECTIONS))
_SCORE_BIAS = cf.Field('score_bias', True, 'A bias in u (official: yes; PyTorch port: no).',
                       cf.BOOLEAN)
_HEAD = cf.Field('head', 'concat', "'concat': one classifier on [g_a^1..g_a^n]; 'indep': one "
                 'per level, averaged.', cf.one_of(vgg.HEADS))
_HEAD_PREACTIVATION = cf.Field('head_preactivation', True, 'BN-ReLU-Dropout on each g_a before '
                               'the classifier (official).', cf.BOOLEAN)
_DROPOUT = cf.Field('dropout', True, 'The official dropout rates; False: none.', cf.BOOLEAN)
_WIDTH = cf.Field('width', 1.0, "Channel multiplier; 1.0 is the paper's network.",
                  cf.POSITIVE_NUMBER, hint='(1.0 is the paper network, 0.25 a narrow one)')
_BN_EPSILON = cf.Field('bn_epsilon', 1e-3, 'BatchNorm ε: 1e-3 in the official Torch code, 1e-5 '
                       'in the PyTorch port.', cf.POSITIVE_NUMBER)
_JUNCTION_AVERAGING = cf.Field(
    'junction_gradient_averaging', False, "The official Torch trainer's backward pass: "
    'gradients averaged, not summed, where g feeds the attention modules and where each tapped '
    'map branches off (LearnToPayAttention/train.lua); False: autodiff.', cf.BOOLEAN,
    added=False)
_FIRST_POOL_SIZE = cf.Field(
    'first_pool_size', 2, 'Side and stride of the first max-pool (after conv 7; after conv 2 '
    'in the VGG baseline): 2, or 5 for 80×80 CUB crops so that every later map has the 32×32 '
    "network's size.", cf.POSITIVE_INTEGER, hint='(2; 5 for 80×80 CUB crops)', added=2)
_RESNET_DEPTH = cf.Field('depth', 164, 'Depth 9n + 2: n bottleneck units per stage.')

FIELDS = {
    'attention_vgg': (
        cf.Field('num_levels', 3, 'att3: local features at convs 7, 10, 13; att2: 10, 13; att1: '
                 '13; 0: none.', cf.one_of((0, 1, 2, 3))),
        _COMPATIBILITY, _NORMALISATION, _PROJECTION, _SCORE_BIAS,
        cf.Field('placement', 'before', "Local features taken 'before' or 'after' the following "
                 'max-pool.', cf.one_of(vgg.PLACEMENTS)),
        _HEAD, _HEAD_PREACTIVATION, _DROPOUT, _WIDTH, _BN_EPSILON, _JUNCTION_AVERAGING,
        _FIRST_POOL_SIZE),
    'vgg': (_DROPOUT, _WIDTH, _BN_EPSILON, _FIRST_POOL_SIZE),
    'attention_resnet': (_RESNET_DEPTH, _COMPATIBILITY, _NORMALISATION, _PROJECTION, _SCORE_BIAS,
                         _HEAD, _HEAD_PREACTIVATION, _DROPOUT, _WIDTH, _JUNCTION_AVERAGING),
    'preact_resnet': (_RESNET_DEPTH, _WIDTH),
}
_MODULES = {
    'attention_vgg': vgg.AttentionVGG,
    'vgg': vgg.VGG,
    'attention_resnet': attention_resnet.AttentionResNet,
    'preact_resnet': attention_resnet.PreActivationResNet,
}
_RESNETS = ('attention_resnet', 'preact_resnet')


def maps_to_unit_range(attention_maps, normalisation: str):
  """Display values in [0, 1] of maps [N, h, w]: sigmoid maps as they are, softmax maps
  min-max scaled per image."""
  if normalisation == 'sigmoid':
    return attention_maps
  return summaries.min_max_scale(attention_maps)


@families.register
class LearnToPayAttention(families.Family):
  """Attention VGG (att1/att2/att3, or no attention), RN-att2 and their baselines."""
  name = 'ltpa'
  fields = FIELDS
  rng_streams = ('dropout',)

  @property
  def feature_layer(self) -> str:
    """The layer lpta.maps explains: the VGGs' conv 13 (L3 of the attention network, 1/4 of the
    image side there), the ResNets' last stage (l_b of RN-att2, 1/4 of the side)."""
    return 'backbone/stage3' if self.model_config.name in _RESNETS else 'backbone/conv13'

  def validate(self) -> None:
    config = self.model_config
    if config.name in _RESNETS:
      attention_resnet.units_per_stage(config.depth, field='config.model.depth')
    # Fields of the VGGs set on a model that has no use for them.
    first_pool_size = config.get('first_pool_size', _FIRST_POOL_SIZE.default)
    if first_pool_size != _FIRST_POOL_SIZE.default and config.name in _RESNETS:
      raise ConfigError(f'config.model.first_pool_size={first_pool_size} applies to the VGGs; '
                        f'{config.name} has no max-pool to resize: leave it at 2.')
    without_junctions = (config.name in ('vgg', 'preact_resnet')
                         or (config.name == 'attention_vgg' and config.num_levels == 0))
    if config.get('junction_gradient_averaging') and without_junctions:
      raise ConfigError('config.model.junction_gradient_averaging=True needs attention levels, '
                        f'whose junctions it averages; {config.name} here has none: set it to '
                        'False.')

  def build(self, num_classes, dtype):
    return _MODULES[self.model_config.name](num_classes=num_classes, dtype=dtype,
                                            **self.settings())

  def figure_arrays(self, aux):
    normalisation = self.model_config.get('normalisation', 'softmax')
    return tuple(maps_to_unit_range(m.astype(jnp.float32), normalisation)
                 for m in aux['attention_maps'])
