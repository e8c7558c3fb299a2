"""(RN-att2)-concat-pc on CIFAR-10: Learn To Pay Attention's attention ResNet-164.

Command:
  python main.py --config=configs/cifar10_rn_att2.py

Same network and recipe as cifar100_rn_att2 (read its differences from the official code).
2,395,484 parameters.

Published: the paper's RN-att2 cell (Jetley et al. 2018, Table 1) is not verified here.
Expected: not yet run.

Protocol: trains on the whole training split and reports the final test accuracy, as the
paper did; no checkpoint is selected. --config.data.validation_split=5000 holds out the last
5,000 training images to rank the best checkpoints instead.

Expected on one H100, estimated from the FLOP and product counts of the train step (not measured:
no GPU has been lent): 8.7–22 s per epoch of 50,000 images, 29 min to 1.2 h for the 200 epochs, by
  python -m lpta.benchmark --config=configs/cifar10_rn_att2.py --estimate=h100 --epoch_examples=50000
"""

from configs import cifar100_rn_att2


def get_config():
  config = cifar100_rn_att2.get_config()
  config.data.name = 'cifar10'
  return config
