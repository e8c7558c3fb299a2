"""The PyTorch port's VGG-att3, attention BEFORE pooling, on CIFAR-100.

Command:
  python main.py --config=configs/cifar100_att3_before.py

l at conv 7 projected up to 512 by a 1×1 conv, u without bias, a plain linear head on the
concatenated descriptors, no dropout, BN epsilon 1e-5; maps of 32², 16², 8². Same recipe as
cifar100_att3 (lr 0.1 halved every 25 epochs, 300 epochs, crops and flips). The port counts three
passes over the data as one "epoch"; we count one.

Published: 22.62% top-1 error (the port's README). 19,993,764 parameters.
"""

from configs import default


def pytorch_port(config, placement):
  """The PyTorch port's architecture choices, shared by its two variants."""
  model = config.model
  model.projection = 'l_up'
  model.score_bias = False
  model.head_preactivation = False
  model.dropout = False
  model.bn_epsilon = 1e-5
  model.placement = placement
  return config


def get_config():
  return pytorch_port(default.get_config(), 'before')
