"""Model registry: builds a Flax module from the `config.model` section.

Every model maps images [B, H, W, C] to (logits [B, num_classes], aux dict); see each class.

`config.model` fields, by `name`:
  'attention_vgg' (LTPA network, lpta.models.vgg.AttentionVGG): num_levels, compatibility,
    normalisation, projection, score_bias, placement, head, head_preactivation (AttentionVGG's
    docstring), dropout, width, bn_epsilon.
  'vgg' (baseline VGG-16, lpta.models.vgg.VGG): dropout, width, bn_epsilon.
  'wrn' (CIFAR wide ResNet WRN-d-k, lpta.models.resnet.WideResNet): depth (6n+4), widen_factor.
  'resnet' (ImageNet ResNet, lpta.models.resnet.ResNet): depth (18 or 34).
Each model reads only its own fields. The computation dtype comes from `config.half_precision`
(bfloat16 compute, float32 parameters).
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lpta.errors import ConfigError
from lpta.models import attention, resnet, vgg

MODELS = ('attention_vgg', 'vgg', 'wrn', 'resnet')
_FIELDS = {
    'attention_vgg': ('num_levels', 'compatibility', 'normalisation', 'projection',
                      'score_bias', 'placement', 'head', 'head_preactivation', 'dropout',
                      'width', 'bn_epsilon'),
    'vgg': ('dropout', 'width', 'bn_epsilon'),
    'wrn': ('depth', 'widen_factor'),
    'resnet': ('depth',),
}
_CHOICES = {
    'compatibility': attention.COMPATIBILITIES,
    'normalisation': attention.NORMALISATIONS,
    'projection': attention.PROJECTIONS,
    'placement': vgg.PLACEMENTS,
    'head': vgg.HEADS,
}


def _validate_vgg(model_config: ml_collections.ConfigDict) -> None:
  if not model_config.width > 0:
    raise ConfigError(f'config.model.width={model_config.width} must be positive '
                      '(1.0 is the paper network, 0.25 a narrow one).')


def _validate_attention_vgg(model_config: ml_collections.ConfigDict) -> None:
  _validate_vgg(model_config)
  if model_config.num_levels not in (0, 1, 2, 3):
    raise ConfigError(f'config.model.num_levels={model_config.num_levels!r} must be 0 (no '
                      'attention), 1, 2 or 3 (att1, att2, att3).')
  for field, choices in _CHOICES.items():
    if model_config[field] not in choices:
      raise ConfigError(f'config.model.{field}={model_config[field]!r} is not valid; '
                        f'use one of {", ".join(choices)}.')


def _validate_wrn(model_config: ml_collections.ConfigDict) -> None:
  resnet.wrn_blocks_per_group(model_config.depth, field='config.model.depth')
  resnet.wrn_group_widths(model_config.widen_factor, field='config.model.widen_factor')


def _validate_resnet(model_config: ml_collections.ConfigDict) -> None:
  if model_config.depth not in resnet.RESNET_STAGE_SIZES:
    raise ConfigError(f'config.model.depth={model_config.depth!r} is not an ImageNet ResNet '
                      f'depth; use one of {", ".join(map(str, resnet.RESNET_STAGE_SIZES))}.')


_VALIDATORS = {
    'attention_vgg': _validate_attention_vgg,
    'vgg': _validate_vgg,
    'wrn': _validate_wrn,
    'resnet': _validate_resnet,
}


def validate(model_config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError, naming the field and the allowed values, for a bad `config.model`."""
  if model_config.name not in MODELS:
    raise ConfigError(f'config.model.name={model_config.name!r} is not a model; '
                      f'use one of {", ".join(MODELS)}.')
  missing = [field for field in _FIELDS[model_config.name] if field not in model_config]
  if missing:
    fields = ', '.join(f'config.model.{field}' for field in missing)
    raise ConfigError(f'config.model.name={model_config.name!r} needs {fields}, which the '
                      'config does not set.')
  _VALIDATORS[model_config.name](model_config)


def _build_attention_vgg(model_config, num_classes, dtype):
  return vgg.AttentionVGG(
      num_classes=num_classes, num_levels=model_config.num_levels,
      compatibility=model_config.compatibility, normalisation=model_config.normalisation,
      projection=model_config.projection, score_bias=model_config.score_bias,
      placement=model_config.placement, head=model_config.head,
      head_preactivation=model_config.head_preactivation, dropout=model_config.dropout,
      width=model_config.width, bn_epsilon=model_config.bn_epsilon, dtype=dtype)


def _build_vgg(model_config, num_classes, dtype):
  return vgg.VGG(num_classes=num_classes, dropout=model_config.dropout, width=model_config.width,
                 bn_epsilon=model_config.bn_epsilon, dtype=dtype)


def _build_wrn(model_config, num_classes, dtype):
  return resnet.WideResNet(depth=model_config.depth, widen_factor=model_config.widen_factor,
                           num_classes=num_classes, dtype=dtype)


def _build_resnet(model_config, num_classes, dtype):
  return resnet.ResNet(stage_sizes=resnet.RESNET_STAGE_SIZES[model_config.depth],
                       num_classes=num_classes, dtype=dtype)


_BUILDERS = {
    'attention_vgg': _build_attention_vgg,
    'vgg': _build_vgg,
    'wrn': _build_wrn,
    'resnet': _build_resnet,
}


def create_model(model_config: ml_collections.ConfigDict, num_classes: int,
                 half_precision: bool = False):
  """The Flax module for `config.model` (validated first)."""
  validate(model_config)
  dtype = jnp.bfloat16 if half_precision else jnp.float32
  return _BUILDERS[model_config.name](model_config, num_classes, dtype)


def abstract_variables_and_outputs(model, image_shape, batch_size: int = 1):
  """(variables, (logits, aux)) of `model` on [batch_size, *image_shape] images, as trees of
  jax.ShapeDtypeStruct: shapes and dtypes only, nothing is computed."""
  images = jax.ShapeDtypeStruct((batch_size, *image_shape), jnp.float32)
  output, variables = jax.eval_shape(
      lambda x: model.init_with_output(jax.random.key(0), x, train=False), images)
  return variables, output


def count_parameters(params) -> int:
  """Number of trainable parameters in a tree of arrays or shapes."""
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(params))
