"""(VGG-att3)-concat-pc on CIFAR-10.

Command:
  python main.py --config=configs/cifar10_att3.py

Same recipe as cifar100_att3. 19,856,461 parameters.

Published: the official script logged 6.45% top-1 error (the reproducibility report quotes 6.34%
for the paper).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.name = 'cifar10'
  return config
