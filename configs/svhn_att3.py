"""(VGG-att3)-concat-pc on SVHN (cropped digits, train split only).

Command:
  python main.py --config=configs/svhn_att3.py

Same network and recipe as cifar100_att3, with random crops but no flips (digits are not
mirror-symmetric).

Published: 3.52% top-1 error as quoted by the ICLR'18 reproducibility report (not verified against
the paper here).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.name = 'svhn_cropped'
  config.data.random_flip = False
  return config
