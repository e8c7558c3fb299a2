"""(VGG-att3)-concat-pc on CIFAR-10.

Command:
  python main.py --config=configs/cifar10_att3.py

Same recipe as cifar100_att3. 19,856,461 parameters.

Published: the official script logged 6.45% top-1 error (the reproducibility report quotes 6.34%
for the paper).

Protocol: trains on the whole training split and reports the final test accuracy, as the
paper did; no checkpoint is selected. --config.data.validation_split=5000 holds out the last
5,000 training images to rank the best checkpoints instead.

Expected on one H100, estimated from the FLOP and product counts of the train step (not measured:
no GPU has been lent): 7.7–23 s per epoch of 50,000 images, 38 min to 1.9 h for the 300 epochs, by
  python -m lpta.benchmark --config=configs/cifar10_att3.py --estimate=h100 --epoch_examples=50000
"""

from configs import ltpa


def get_config():
  config = ltpa.get_config()
  config.data.name = 'cifar10'
  return config
