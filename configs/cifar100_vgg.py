"""Baseline VGG-16 without attention on CIFAR-100 (cifar.torch's vgg_bn_drop).

Command:
  python main.py --config=configs/cifar100_vgg.py

All five max-pools, then Dropout-Dense 512-BN-ReLU-Dropout-Dense; same recipe as cifar100_att3.

Published: 30.62% top-1 error (paper); the official script logged 30.71%.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.model.name = 'vgg'
  return config
