"""(VGG-att3)-concat-pc on CIFAR-10.

Command:
  python main.py --config=configs/cifar10_att3.py

Same recipe as cifar100_att3. 19,856,461 parameters.

Published: the official script logged 6.45% top-1 error (the reproducibility report quotes 6.34%
for the paper).

Protocol: trains on the whole training split and reports the final test accuracy, as the
paper did; no checkpoint is selected. --config.data.validation_split=5000 holds out the last
5,000 training images to rank the best checkpoints instead.
"""

from configs import ltpa


def get_config():
  config = ltpa.get_config()
  config.data.name = 'cifar10'
  return config
