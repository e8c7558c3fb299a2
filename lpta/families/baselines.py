"""Whole-image baselines of the glimpse tasks: fully connected and convolutional networks.

`config.model` fields, by `name` (lpta.models.baselines):
  'mlp': hidden_units (a tuple, e.g. (256, 256)), input_pool (1, or the factor of the average
    pooling that gives the "context only" view, e.g. 5 for 60×60 → 12×12).
  'cnn': channels (a tuple), kernel_size, hidden_units (an int).
They train with cross-entropy and have nothing to draw.
"""

from lpta import families
from lpta.errors import ConfigError
from lpta.models import baselines

# Fields that are tuples of widths, and fields that are single integers, by model name.
_TUPLE_FIELDS = {'mlp': ('hidden_units',), 'cnn': ('channels',)}
_INT_FIELDS = {'mlp': ('input_pool',), 'cnn': ('kernel_size', 'hidden_units')}


def _positive_int(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool) and value > 0


@families.register
class WholeImageBaselines(families.Family):
  """Networks that see the whole (or pooled) image at once."""
  name = 'baselines'
  model_names = ('mlp', 'cnn')

  def validate(self) -> None:
    config = self.model_config
    families.require_fields(config, _TUPLE_FIELDS[config.name] + _INT_FIELDS[config.name])
    for field in _TUPLE_FIELDS[config.name]:
      value = config[field]
      if not isinstance(value, (tuple, list)) or not all(map(_positive_int, value)):
        raise ConfigError(f'config.model.{field}={value!r} must be a tuple of positive '
                          'integers, e.g. (256, 256).')
    for field in _INT_FIELDS[config.name]:
      if not _positive_int(config[field]):
        raise ConfigError(f'config.model.{field}={config[field]!r} must be a positive integer.')

  def build(self, num_classes, dtype):
    config = self.model_config
    if config.name == 'mlp':
      return baselines.MLP(num_classes=num_classes, hidden_units=tuple(config.hidden_units),
                           input_pool=config.input_pool, dtype=dtype)
    return baselines.ConvNet(num_classes=num_classes, channels=tuple(config.channels),
                             kernel_size=config.kernel_size, hidden_units=config.hidden_units,
                             dtype=dtype)
