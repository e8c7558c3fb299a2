"""(VGG-att2)-concat-pc on CIFAR-10: the paper's best CIFAR-10 attention model.

Command:
  python main.py --config=configs/cifar10_att2.py

Same recipe as cifar100_att3 with two attention levels (convs 10 and 13).

Published: 5.23% top-1 error (paper, via the ICLR'18 reproducibility report); the official script
logged 5.42%.

Protocol: trains on the whole training split and reports the final test accuracy, as the
paper did; no checkpoint is selected. --config.data.validation_split=5000 holds out the last
5,000 training images to rank the best checkpoints instead.

Expected on one H100, estimated from the FLOP and product counts of the train step (not measured:
no GPU has been lent): 7.6–22 s per epoch of 50,000 images, 38 min to 1.9 h for the 300 epochs, by
  python -m lpta.benchmark --config=configs/cifar10_att2.py --estimate=h100 --epoch_examples=50000
"""

from configs import ltpa


def get_config():
  config = ltpa.get_config()
  config.data.name = 'cifar10'
  config.model.num_levels = 2
  return config
