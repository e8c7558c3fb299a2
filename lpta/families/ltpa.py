"""Learn To Pay Attention (Jetley et al., ICLR 2018): attention VGGs and ResNets, their baselines.

`config.model` fields, by `name`:
  'attention_vgg' (lpta.models.vgg.AttentionVGG): num_levels, compatibility, normalisation,
    projection, score_bias, placement, head, head_preactivation (AttentionVGG's docstring),
    dropout, width, bn_epsilon, junction_gradient_averaging (the official trainer's backward
    pass, off by default), first_pool_size (2; 5 for 80×80 CUB crops).
  'vgg' (the baseline VGG-16, lpta.models.vgg.VGG): dropout, width, bn_epsilon, first_pool_size.
  'attention_resnet' (RN-att2, lpta.models.attention_resnet.AttentionResNet): depth (9n+2),
    compatibility, normalisation, projection, score_bias, head, head_preactivation, dropout,
    width, junction_gradient_averaging.
  'preact_resnet' (the baseline pre-activation ResNet-164,
    lpta.models.attention_resnet.PreActivationResNet): depth, width.
The figure overlays the attention maps L1..Ln: softmax maps (which sum to one, so their values
depend on the map size) min-max scaled per image, sigmoid maps (gates in (0, 1)) as they are.
"""

import jax.numpy as jnp

from lpta import families
from lpta import summaries
from lpta.errors import ConfigError
from lpta.models import attention, attention_resnet, vgg

_FIELDS = {
    'attention_vgg': ('num_levels', 'compatibility', 'normalisation', 'projection',
                      'score_bias', 'placement', 'head', 'head_preactivation', 'dropout',
                      'width', 'bn_epsilon'),
    'vgg': ('dropout', 'width', 'bn_epsilon'),
    'attention_resnet': ('depth', 'compatibility', 'normalisation', 'projection', 'score_bias',
                         'head', 'head_preactivation', 'dropout', 'width'),
    'preact_resnet': ('depth', 'width'),
}
_MODULES = {
    'attention_vgg': vgg.AttentionVGG,
    'vgg': vgg.VGG,
    'attention_resnet': attention_resnet.AttentionResNet,
    'preact_resnet': attention_resnet.PreActivationResNet,
}
_RESNETS = ('attention_resnet', 'preact_resnet')
# Fields added after runs were saved without them (lpta.checkpoints.ADDED_FIELDS).
_ADDED_FIELDS = {'attention_vgg': ('junction_gradient_averaging', 'first_pool_size'),
                 'vgg': ('first_pool_size',),
                 'attention_resnet': ('junction_gradient_averaging',)}
_CHOICES = {
    'compatibility': attention.COMPATIBILITIES,
    'normalisation': attention.NORMALISATIONS,
    'projection': attention.PROJECTIONS,
    'placement': vgg.PLACEMENTS,
    'head': vgg.HEADS,
}


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
  model_names = tuple(_MODULES)
  rng_streams = ('dropout',)

  @property
  def feature_layer(self) -> str:
    """The layer lpta.maps explains: the VGGs' conv 13 (L3 of the attention network, 1/4 of the
    image side there), the ResNets' last stage (l_b of RN-att2, 1/4 of the side)."""
    return 'backbone/stage3' if self.model_config.name in _RESNETS else 'backbone/conv13'

  def validate(self) -> None:
    config = self.model_config
    families.require_fields(config, _FIELDS[config.name])
    if not config.width > 0:
      raise ConfigError(f'config.model.width={config.width} must be positive '
                        '(1.0 is the paper network, 0.25 a narrow one).')
    if config.name in _RESNETS:
      attention_resnet.units_per_stage(config.depth, field='config.model.depth')
    added = families.added_fields(config, ('first_pool_size', 'junction_gradient_averaging'))
    first_pool_size = added['first_pool_size']
    if not isinstance(first_pool_size, int) or first_pool_size < 1:
      raise ConfigError(f'config.model.first_pool_size={first_pool_size!r} must be a positive '
                        'integer (2; 5 for 80×80 CUB crops).')
    if first_pool_size != 2 and config.name in _RESNETS:
      raise ConfigError(f'config.model.first_pool_size={first_pool_size} applies to the VGGs; '
                        f'{config.name} has no max-pool to resize: leave it at 2.')
    without_junctions = (config.name in ('vgg', 'preact_resnet')
                         or (config.name == 'attention_vgg' and config.num_levels == 0))
    if added['junction_gradient_averaging'] and without_junctions:
      raise ConfigError('config.model.junction_gradient_averaging=True needs attention levels, '
                        f'whose junctions it averages; {config.name} here has none: set it to '
                        'False.')
    if config.name == 'attention_vgg' and config.num_levels not in (0, 1, 2, 3):
      raise ConfigError(f'config.model.num_levels={config.num_levels!r} must be 0 (no '
                        'attention), 1, 2 or 3 (att1, att2, att3).')
    for field, choices in _CHOICES.items():
      if field in _FIELDS[config.name] and config[field] not in choices:
        raise ConfigError(f'config.model.{field}={config[field]!r} is not valid; '
                          f'use one of {", ".join(choices)}.')

  def build(self, num_classes, dtype):
    config = self.model_config
    fields = {field: config[field] for field in _FIELDS[config.name]}
    fields.update(families.added_fields(config, _ADDED_FIELDS.get(config.name, ())))
    return _MODULES[config.name](num_classes=num_classes, dtype=dtype, **fields)

  def figure_arrays(self, aux):
    normalisation = self.model_config.get('normalisation', 'softmax')
    return tuple(maps_to_unit_range(m.astype(jnp.float32), normalisation)
                 for m in aux['attention_maps'])
