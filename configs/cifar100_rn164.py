"""Baseline pre-activation ResNet-164 without attention on CIFAR-100 (RN-164).

Command:
  python main.py --config=configs/cifar100_rn164.py

The backbone of cifar100_rn_att2 (18 bottleneck units per stage, widths 64, 128, 256), then
BN-ReLU, global average pooling and a linear classifier; the same recipe and differences from
the official code. 1,726,388 parameters.

Published: 24.4% top-1 error (quoted by an ICLR'18 reproducibility write-up; provenance unclear;
the paper's cell is not verified here).
Expected: not yet run.

Protocol: trains on the whole training split and reports the final test accuracy, as the
paper did; no checkpoint is selected. --config.data.validation_split=5000 holds out the last
5,000 training images to rank the best checkpoints instead.

Expected on one H100, estimated from the FLOP and product counts of the train step (not measured:
no GPU has been lent): 8.3–21 s per epoch of 50,000 images, 28 min to 1.2 h for the 200 epochs, by
  python -m lpta.benchmark --config=configs/cifar100_rn164.py --estimate=h100 --epoch_examples=50000
"""

from configs import cifar100_rn_att2


def get_config():
  return cifar100_rn_att2.baseline(cifar100_rn_att2.get_config())
