"""(VGG-att3)-concat-pc on SVHN (cropped digits, train split only).

Command:
  python main.py --config=configs/svhn_att3.py

Same network and recipe as cifar100_att3, with random crops but no flips (digits are not
mirror-symmetric).

Published: 3.52% top-1 error as quoted by the ICLR'18 reproducibility report (not verified against
the paper here).

Protocol: trains on the whole training split and reports the final test accuracy, as the
paper did; no checkpoint is selected. --config.data.validation_split=5000 holds out the last
5,000 training images to rank the best checkpoints instead.

Expected on one H100, estimated from the FLOP and product counts of the train step (not measured:
no GPU has been lent): 11–33 s per epoch of 73,257 images, 56 min to 2.8 h for the 300 epochs, by
  python -m lpta.benchmark --config=configs/svhn_att3.py --estimate=h100 --epoch_examples=73257
"""

from configs import ltpa


def get_config():
  config = ltpa.get_config()
  config.data.name = 'svhn_cropped'
  config.data.random_flip = False
  return config
