"""(VGG-att3)-concat-pc on CIFAR-100: Learn To Pay Attention, Table 1.

Command:
  python main.py --config=configs/cifar100_att3.py

The official Torch network (g projected down at conv 7, BN-ReLU-Dropout head, official dropout)
trained with SGD lr 0.1, momentum 0.9, weight decay 5e-4, batch 128, 300 epochs, the rate halved
every 25 epochs; random crops (4-pixel padding) and flips.

Published: 22.97% top-1 error (paper; the official script logged 22.98%). 19,971,751 parameters.

Protocol: trains on the whole training split and reports the final test accuracy, as the
paper did; no checkpoint is selected. --config.data.validation_split=5000 holds out the last
5,000 training images to rank the best checkpoints instead.

Expected on one H100, estimated from the FLOP and product counts of the train step (not measured:
no GPU has been lent): 7.7–23 s per epoch of 50,000 images, 38 min to 1.9 h for the 300 epochs, by
  python -m lpta.benchmark --config=configs/cifar100_att3.py --estimate=h100 --epoch_examples=50000
"""

from configs import ltpa


def get_config():
  return ltpa.get_config()
