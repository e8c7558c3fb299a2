"""The PyTorch port's VGG-att3, attention AFTER pooling, on CIFAR-100.

Command:
  python main.py --config=configs/cifar100_att3_after.py

As cifar100_att3_before but the local features are taken after the max-pools: maps of 16², 8², 4².

Published: 22.92% top-1 error (the port's README). 19,993,764 parameters.
"""

from configs import cifar100_att3_before
from configs import default


def get_config():
  return cifar100_att3_before.pytorch_port(default.get_config(), 'after')
