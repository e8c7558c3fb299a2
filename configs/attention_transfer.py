"""The base of every attention-transfer config: wide ResNets on CIFAR, ResNets on ImageNet.

Not meant to be run directly; the experiment configs (cifar10_wrn.py, cifar10_at.py, ...) use
these recipes of szagoruyko/attention-transfer. The objective is chosen with
`config.transfer.method` and a teacher with `config.teacher.workdir` (lpta/objectives.py).
"""

import ml_collections

from configs import common
from lpta import families


def wrn(config: ml_collections.ConfigDict, depth: int,
        widen_factor: float) -> ml_collections.ConfigDict:
  """A WRN-depth-widen_factor (depth = 6n + 4; widths 16k, 32k, 64k)."""
  config.model = families.default_config('wrn')
  config.model.update(depth=depth, widen_factor=widen_factor)
  return config


def cifar_recipe(data_name: str, depth: int, widen_factor: float) -> ml_collections.ConfigDict:
  """cifar.py: SGD lr 0.1, momentum 0.9, weight decay 5e-4, batch 128, 200 epochs, the rate
  × 0.2 at epochs 60, 120 and 160; per-channel mean/std, random crops (zero padding 4, the
  original pads by reflection) and flips. Momentum is not reset at the rate drops."""
  config = wrn(common.get_config(), depth, widen_factor)
  config.data.name = data_name
  config.optimizer.schedule = 'multistep'
  config.optimizer.decay_factor = 0.2
  config.optimizer.decay_epochs = (60, 120, 160)
  config.num_epochs = 200
  return config


def imagenet_recipe(depth: int) -> ml_collections.ConfigDict:
  """imagenet.py: ResNet-18/34, SGD lr 0.1, momentum 0.9, weight decay 1e-4, batch 256, 100
  epochs, the rate × 0.1 at epochs 30, 60 and 90; random-resized crops drawn by tf.data."""
  config = common.get_config()
  config.data.name = 'imagenet2012'
  config.data.random_crop_padding = 0
  # torchvision's post-activation layout (lpta/families/attention_transfer.py: preactivation).
  config.model = families.default_config('resnet')
  config.model.depth = depth
  config.optimizer.weight_decay = 1e-4
  config.optimizer.schedule = 'multistep'
  config.optimizer.decay_factor = 0.1
  config.optimizer.decay_epochs = (30, 60, 90)
  config.batch_size = 256
  config.num_epochs = 100
  return config


def fashion_mnist_recipe(depth: int, widen_factor: float) -> ml_collections.ConfigDict:
  """The CPU-scale recipe of the Fashion-MNIST teacher and students: the first 15,000 training
  images, SGD lr 0.1 with a cosine schedule, flips, one epoch, evaluation on the full test set."""
  config = wrn(common.get_config(), depth, widen_factor)
  config.data.name = 'fashion_mnist'
  config.data.random_crop_padding = 0
  config.data.train_split = 'train[:15000]'
  config.optimizer.schedule = 'cosine'
  config.num_epochs = 1
  config.eval_batch_size = 1000
  return config
