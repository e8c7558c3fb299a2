"""The base of every Learn To Pay Attention config: (VGG-att3)-concat-pc on CIFAR-100.

Not meant to be run directly; the experiment configs (cifar100_att3.py, ...) start from it. The
official recipe: SGD lr 0.1, momentum 0.9, weight decay 5e-4, batch 128, 300 epochs, the rate
halved every 25 epochs, random crops (4-pixel padding) and flips; the model's fields are
declared and documented in lpta/families/ltpa.py.
"""

import ml_collections

from configs import common
from lpta import families


def get_config() -> ml_collections.ConfigDict:
  config = common.get_config()
  config.data.name = 'cifar100'
  # (VGG-att3)-concat-pc, attention before pooling: every field of the model at its default
  # (lpta/families/ltpa.py declares and documents them). 'vgg' is the baseline VGG-16.
  config.model = families.default_config('attention_vgg')
  # = the official lr 1.0 with Torch7's damped momentum: the official trainer
  # (saumya-jetley/cd_ICLR18_LearnToPayAttention, VGGNet/) runs Torch7's optim.sgd at lr 1 and
  # momentum 0.9, whose dampening defaults to the momentum (optimizer.dampening).
  config.optimizer.learning_rate = 0.1
  config.optimizer.schedule = 'step'
  config.optimizer.decay_factor = 0.5  # halve ...
  config.optimizer.decay_every_epochs = 25  # ... every 25 epochs
  config.num_epochs = 300
  return config


def pytorch_port(config: ml_collections.ConfigDict, placement: str) -> ml_collections.ConfigDict:
  """The PyTorch port's architecture choices, attention 'before' or 'after' pooling."""
  model = config.model
  model.projection = 'l_up'
  model.score_bias = False
  model.head_preactivation = False
  model.dropout = False
  model.bn_epsilon = 1e-5
  model.placement = placement
  return config
