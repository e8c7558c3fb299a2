"""Whole-image baselines of the glimpse tasks: fully connected and convolutional networks.

Models (`config.model.name`, lpta.models.baselines) and their fields (FIELDS below):
  'mlp': ReLU layers on the (optionally average-pooled) flattened image;
  'cnn': ReLU convolutions of stride 2, then one ReLU layer.
They train with cross-entropy and have nothing to draw.
"""

from lpta import config_fields as cf
from lpta import families
from lpta.models import baselines

_WIDTHS = 'positive integers, e.g. (256, 256)'
FIELDS = {
    'mlp': (cf.Field('hidden_units', (256, 256), 'The widths of the ReLU layers.',
                     cf.tuple_of(cf.POSITIVE_INTEGER, _WIDTHS)),
            cf.Field('input_pool', 1, 'Factor of the average pooling of the image first (5: '
                     'the "context only" view, 60×60 → 12×12); 1: none.', cf.POSITIVE_INTEGER)),
    'cnn': (cf.Field('channels', (16, 32), 'The channels of the 5×5 convolutions of stride 2.',
                     cf.tuple_of(cf.POSITIVE_INTEGER, _WIDTHS)),
            cf.Field('kernel_size', 5, 'Their side.', cf.POSITIVE_INTEGER),
            cf.Field('hidden_units', 256, 'The width of the ReLU layer after them.',
                     cf.POSITIVE_INTEGER)),
}
_MODULES = {'mlp': baselines.MLP, 'cnn': baselines.ConvNet}


@families.register
class WholeImageBaselines(families.Family):
  """Networks that see the whole (or pooled) image at once."""
  name = 'baselines'
  fields = FIELDS

  def build(self, num_classes, dtype):
    return _MODULES[self.model_config.name](num_classes=num_classes, dtype=dtype,
                                            **self.settings())
