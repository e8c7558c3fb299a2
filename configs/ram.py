"""The base of the recurrent glimpse configs: RAM on Fashion-MNIST items translated on 60×60 canvases.

Not meant to be run directly; translated_fashion_mnist_ram.py, cluttered_fashion_mnist_ram.py and
canvas_baseline.py start from it. RAM's 60×60 recipe (Mnih et al. 2014, §4.1): 12×12 patches at
3 scales (12, 24, 48 pixels), glimpse network 128/128/256 units, a ReLU RNN core of 256 units, a
Gaussian policy of fixed σ, the hybrid loss. lpta's training recipe: 20 epochs of SGD (lr 0.05,
momentum 0.9, cosine), the first location chosen by the policy from the zero state, one
trajectory per image with a logistic baseline, the REINFORCE term weighted 1e-3 (with SGD, the
policy's learning rate: 0.01 and 0.1 moved the glimpses away from the item, 0.1 to the border;
see docs/glimpse_models.md). The canvases: lpta/data/canvases.py; every model field:
lpta/families/glimpse.py.
"""

import ml_collections

from configs import common
from lpta import families


def get_config() -> ml_collections.ConfigDict:
  config = common.get_config()
  data = config.data
  data.name = 'translated_fashion_mnist'  # or 'cluttered_fashion_mnist'
  data.canvas_size = 60  # RAM's 60×60 canvases (lpta/data/canvases.py declares the fields)
  data.random_crop_padding = 0  # crops and flips would move the item away from its box
  data.random_flip = False
  data.validation_split = 5000  # the last 5,000 training canvases rank the best checkpoint

  # RAM-6 with every field of the model at its default (lpta/families/glimpse.py declares and
  # documents them): 12×12 patches at 3 scales, σ = 0.11, the policy's first location, one
  # trajectory per image, REINFORCE weighted 1e-3.
  config.model = families.default_config('ram')

  config.optimizer.learning_rate = 0.05
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 0.
  config.optimizer.schedule = 'cosine'
  config.batch_size = 128
  config.eval_batch_size = 1000
  config.num_epochs = 20
  config.eval_every_epochs = 4
  return config
