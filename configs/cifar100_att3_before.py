"""The PyTorch port's VGG-att3, attention BEFORE pooling, on CIFAR-100.

Command:
  python main.py --config=configs/cifar100_att3_before.py

l at conv 7 projected up to 512 by a 1×1 conv, u without bias, a plain linear head on the
concatenated descriptors, no dropout, BN epsilon 1e-5; maps of 32², 16², 8². Same recipe as
cifar100_att3 (lr 0.1 halved every 25 epochs, 300 epochs, crops and flips). The port counts three
passes over the data as one "epoch"; we count one.

Published: 22.62% top-1 error (the port's README). 19,993,764 parameters.

Protocol: trains on the whole training split and reports the final test accuracy, as the
paper did; no checkpoint is selected. --config.data.validation_split=5000 holds out the last
5,000 training images to rank the best checkpoints instead.

Expected on one H100, estimated from the FLOP and product counts of the train step (not measured:
no GPU has been lent): 7.9–24 s per epoch of 50,000 images, 40 min to 2.0 h for the 300 epochs, by
  python -m lpta.benchmark --config=configs/cifar100_att3_before.py --estimate=h100 --epoch_examples=50000
"""

from configs import ltpa


def get_config():
  return ltpa.pytorch_port(ltpa.get_config(), 'before')
