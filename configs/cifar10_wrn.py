"""A wide ResNet WRN-d-k on CIFAR-10: the teachers and student baselines of the AT paper's Table 1.

Commands (teachers, then the student baselines):
  python main.py --config=configs/cifar10_wrn.py --config.model.depth=16 --config.model.widen_factor=2 --workdir=runs/wrn_16_2
  python main.py --config=configs/cifar10_wrn.py --config.model.depth=40 --config.model.widen_factor=1 --workdir=runs/wrn_40_1
  python main.py --config=configs/cifar10_wrn.py --config.model.depth=40 --config.model.widen_factor=2 --workdir=runs/wrn_40_2
  python main.py --config=configs/cifar10_wrn.py --workdir=runs/wrn_16_1

The recipe of szagoruyko/attention-transfer (cifar.py): SGD lr 0.1, momentum 0.9, weight decay
5e-4, batch 128, 200 epochs, the rate × 0.2 at epochs 60, 120 and 160; per-channel mean/std,
random crops (4-pixel padding) and flips. Two differences from the original: crops pad with
zeros rather than by reflection, and momentum is not reset at each rate drop.

Published: test error (%) WRN-16-1 8.77, WRN-16-2 6.31, WRN-40-1 6.58, WRN-40-2 5.23.
WRN-16-1 has 175,066 parameters.
"""

import ml_collections

from configs import default


def wrn_recipe(config, depth: int, widen_factor: float):
  """The attention-transfer paper's CIFAR network and schedule."""
  config.model = ml_collections.ConfigDict(dict(name='wrn', depth=depth,
                                                widen_factor=widen_factor))
  config.optimizer.schedule = 'multistep'
  config.optimizer.decay_factor = 0.2
  config.optimizer.decay_epochs = (60, 120, 160)
  config.num_epochs = 200
  return config


def get_config():
  config = default.get_config()
  config.data.name = 'cifar10'
  return wrn_recipe(config, depth=16, widen_factor=1)
