"""Model registry: builds a Flax module from the `config.model` section.

Every model maps images [B, H, W, C] to (logits [B, num_classes], aux dict); see each class.

`config.model` fields:
  name: 'attention_vgg' (LTPA network, lpta.models.vgg.AttentionVGG) or 'vgg' (baseline VGG-16).
  num_levels, compatibility, normalisation, projection, score_bias, placement, head,
  head_preactivation: the attention network's options (AttentionVGG's docstring).
  dropout, width, bn_epsilon: both networks.
The computation dtype comes from `config.half_precision` (bfloat16 compute, float32 parameters).
"""

import jax.numpy as jnp
import ml_collections

from lpta.errors import ConfigError
from lpta.models import attention, vgg

MODELS = ('attention_vgg', 'vgg')
_CHOICES = {
    'compatibility': attention.COMPATIBILITIES,
    'normalisation': attention.NORMALISATIONS,
    'projection': attention.PROJECTIONS,
    'placement': vgg.PLACEMENTS,
    'head': vgg.HEADS,
}


def validate(model_config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError, naming the field and the allowed values, for a bad `config.model`."""
  if model_config.name not in MODELS:
    raise ConfigError(f'config.model.name={model_config.name!r} is not a model; '
                      f'use one of {", ".join(MODELS)}.')
  if not model_config.width > 0:
    raise ConfigError(f'config.model.width={model_config.width} must be positive '
                      '(1.0 is the paper network, 0.25 a narrow one).')
  if model_config.name == 'vgg':
    return
  if model_config.num_levels not in (0, 1, 2, 3):
    raise ConfigError(f'config.model.num_levels={model_config.num_levels!r} must be 0 (no '
                      'attention), 1, 2 or 3 (att1, att2, att3).')
  for field, choices in _CHOICES.items():
    if model_config[field] not in choices:
      raise ConfigError(f'config.model.{field}={model_config[field]!r} is not valid; '
                        f'use one of {", ".join(choices)}.')


def create_model(model_config: ml_collections.ConfigDict, num_classes: int,
                 half_precision: bool = False):
  """The Flax module for `config.model` (validated first)."""
  validate(model_config)
  dtype = jnp.bfloat16 if half_precision else jnp.float32
  common = dict(num_classes=num_classes, dropout=model_config.dropout, width=model_config.width,
                bn_epsilon=model_config.bn_epsilon, dtype=dtype)
  if model_config.name == 'vgg':
    return vgg.VGG(**common)
  return vgg.AttentionVGG(
      num_levels=model_config.num_levels, compatibility=model_config.compatibility,
      normalisation=model_config.normalisation, projection=model_config.projection,
      score_bias=model_config.score_bias, placement=model_config.placement,
      head=model_config.head, head_preactivation=model_config.head_preactivation, **common)
