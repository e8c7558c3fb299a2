"""Learn To Pay Attention (Jetley et al., ICLR 2018): the attention VGG and its VGG baseline.

`config.model` fields, by `name`:
  'attention_vgg' (lpta.models.vgg.AttentionVGG): num_levels, compatibility, normalisation,
    projection, score_bias, placement, head, head_preactivation (AttentionVGG's docstring),
    dropout, width, bn_epsilon.
  'vgg' (the baseline VGG-16, lpta.models.vgg.VGG): dropout, width, bn_epsilon.
The figure overlays the attention maps L1..Ln: softmax maps (which sum to one, so their values
depend on the map size) min-max scaled per image, sigmoid maps (gates in (0, 1)) as they are.
"""

import jax.numpy as jnp

from lpta import families
from lpta import summaries
from lpta.errors import ConfigError
from lpta.models import attention, vgg

_FIELDS = {
    'attention_vgg': ('num_levels', 'compatibility', 'normalisation', 'projection',
                      'score_bias', 'placement', 'head', 'head_preactivation', 'dropout',
                      'width', 'bn_epsilon'),
    'vgg': ('dropout', 'width', 'bn_epsilon'),
}
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
  """Attention VGG (att1/att2/att3, or no attention) and the baseline VGG-16."""
  name = 'ltpa'
  model_names = ('attention_vgg', 'vgg')
  rng_streams = ('dropout',)
  # The last convolution before the extra pools (1/4 of the image side with 2 pools before it in
  # the attention network): the local features of L3, and the usual Grad-CAM layer.
  feature_layer = 'backbone/conv13'

  def validate(self) -> None:
    config = self.model_config
    families.require_fields(config, _FIELDS[config.name])
    if not config.width > 0:
      raise ConfigError(f'config.model.width={config.width} must be positive '
                        '(1.0 is the paper network, 0.25 a narrow one).')
    if config.name == 'vgg':
      return
    if config.num_levels not in (0, 1, 2, 3):
      raise ConfigError(f'config.model.num_levels={config.num_levels!r} must be 0 (no '
                        'attention), 1, 2 or 3 (att1, att2, att3).')
    for field, choices in _CHOICES.items():
      if config[field] not in choices:
        raise ConfigError(f'config.model.{field}={config[field]!r} is not valid; '
                          f'use one of {", ".join(choices)}.')

  def build(self, num_classes, dtype):
    config = self.model_config
    if config.name == 'vgg':
      return vgg.VGG(num_classes=num_classes, dropout=config.dropout, width=config.width,
                     bn_epsilon=config.bn_epsilon, dtype=dtype)
    return vgg.AttentionVGG(
        num_classes=num_classes, num_levels=config.num_levels,
        compatibility=config.compatibility, normalisation=config.normalisation,
        projection=config.projection, score_bias=config.score_bias,
        placement=config.placement, head=config.head,
        head_preactivation=config.head_preactivation, dropout=config.dropout,
        width=config.width, bn_epsilon=config.bn_epsilon, dtype=dtype)

  def figure_arrays(self, aux):
    normalisation = self.model_config.get('normalisation', 'softmax')
    return tuple(maps_to_unit_range(m.astype(jnp.float32), normalisation)
                 for m in aux['attention_maps'])
