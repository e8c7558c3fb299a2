"""The PyTorch port's VGG-att3, attention AFTER pooling, on CIFAR-100.

Command:
  python main.py --config=configs/cifar100_att3_after.py

As cifar100_att3_before but the local features are taken after the max-pools: maps of 16², 8², 4².

Published: 22.92% top-1 error (the port's README). 19,993,764 parameters.

Protocol: trains on the whole training split and reports the final test accuracy, as the
paper did; no checkpoint is selected. --config.data.validation_split=5000 holds out the last
5,000 training images to rank the best checkpoints instead.

Expected on one H100, estimated from the FLOP and product counts of the train step (not measured:
no GPU has been lent): 7.7–23 s per epoch of 50,000 images, 39 min to 1.9 h for the 300 epochs, by
  python -m lpta.benchmark --config=configs/cifar100_att3_after.py --estimate=h100 --epoch_examples=50000
"""

from configs import ltpa


def get_config():
  return ltpa.pytorch_port(ltpa.get_config(), 'after')
