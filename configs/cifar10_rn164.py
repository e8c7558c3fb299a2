"""Baseline pre-activation ResNet-164 without attention on CIFAR-10 (RN-164).

Command:
  python main.py --config=configs/cifar10_rn164.py

Same network and recipe as cifar100_rn164. 1,703,258 parameters.

Published: 6.04% top-1 error (quoted by an ICLR'18 reproducibility write-up; provenance unclear;
the paper's cell is not verified here).
Expected: not yet run.

Protocol: trains on the whole training split and reports the final test accuracy, as the
paper did; no checkpoint is selected. --config.data.validation_split=5000 holds out the last
5,000 training images to rank the best checkpoints instead.

Expected on one H100, estimated from the FLOP and product counts of the train step (not measured:
no GPU has been lent): 8.3–21 s per epoch of 50,000 images, 28 min to 1.2 h for the 200 epochs, by
  python -m lpta.benchmark --config=configs/cifar10_rn164.py --estimate=h100 --epoch_examples=50000
"""

from configs import cifar100_rn164


def get_config():
  config = cifar100_rn164.get_config()
  config.data.name = 'cifar10'
  return config
