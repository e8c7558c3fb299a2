"""(VGG-att2)-concat-pc on CIFAR-10: the paper's best CIFAR-10 attention model.

Command:
  python main.py --config=configs/cifar10_att2.py

Same recipe as cifar100_att3 with two attention levels (convs 10 and 13).

Published: 5.23% top-1 error (paper, via the ICLR'18 reproducibility report); the official script
logged 5.42%.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.name = 'cifar10'
  config.model.num_levels = 2
  return config
