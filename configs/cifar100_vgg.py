"""Baseline VGG-16 without attention on CIFAR-100 (cifar.torch's vgg_bn_drop).

Command:
  python main.py --config=configs/cifar100_vgg.py

All five max-pools, then Dropout-Dense 512-BN-ReLU-Dropout-Dense; same recipe as cifar100_att3.

Published: 30.62% top-1 error (paper); the official script logged 30.71%.

Protocol: trains on the whole training split and reports the final test accuracy, as the
paper did; no checkpoint is selected. --config.data.validation_split=5000 holds out the last
5,000 training images to rank the best checkpoints instead.

Expected on one H100, estimated from the FLOP and product counts of the train step (not measured:
no GPU has been lent): 0.85–2.4 s per epoch of 50,000 images, 4 min to 12 min for the 300 epochs,
by
  python -m lpta.benchmark --config=configs/cifar100_vgg.py --estimate=h100 --epoch_examples=50000
"""

from configs import ltpa


def get_config():
  config = ltpa.get_config()
  config.model.name = 'vgg'
  return config
