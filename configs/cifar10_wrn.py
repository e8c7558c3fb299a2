"""A wide ResNet WRN-d-k on CIFAR-10: the teachers and student baselines of the AT paper's Table 1.

Commands (teachers, then the student baselines):
  python main.py --config=configs/cifar10_wrn.py --config.model.depth=16 --config.model.widen_factor=2 --workdir=runs/wrn_16_2
  python main.py --config=configs/cifar10_wrn.py --config.model.depth=40 --config.model.widen_factor=1 --workdir=runs/wrn_40_1
  python main.py --config=configs/cifar10_wrn.py --config.model.depth=40 --config.model.widen_factor=2 --workdir=runs/wrn_40_2
  python main.py --config=configs/cifar10_wrn.py --workdir=runs/wrn_16_1

The recipe of szagoruyko/attention-transfer (cifar.py): SGD lr 0.1, momentum 0.9, weight decay
5e-4, batch 128, 200 epochs, the rate × 0.2 at epochs 60, 120 and 160; per-channel mean/std,
random crops (4-pixel padding) and flips. Two differences from the original: crops pad with
zeros rather than by reflection, and momentum is not reset at each rate drop.

Published: test error (%) WRN-16-1 8.77, WRN-16-2 6.31, WRN-40-1 6.58, WRN-40-2 5.23.
WRN-16-1 has 175,066 parameters.

Protocol: trains on the whole training split and reports the final test accuracy, as the
paper did; no checkpoint is selected. --config.data.validation_split=5000 holds out the last
5,000 training images to rank the best checkpoints instead.

Expected on one H100, estimated from the FLOP and product counts of the train step (not measured:
no GPU has been lent): 0.42–1.1 s per epoch of 50,000 images, 1 min to 4 min for the 200 epochs,
by
  python -m lpta.benchmark --config=configs/cifar10_wrn.py --estimate=h100 --epoch_examples=50000
"""

from configs import attention_transfer


def get_config():
  return attention_transfer.cifar_recipe('cifar10', depth=16, widen_factor=1)
