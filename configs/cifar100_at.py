"""WRN-40-2 → WRN-16-2 on CIFAR-100, the distillation benchmark used by later papers.

Commands:
  python main.py --config=configs/cifar100_at.py --config.transfer.method=none --config.model.depth=40 --workdir=runs/c100_wrn_40_2
  python main.py --config=configs/cifar100_at.py --config.teacher.workdir=runs/c100_wrn_40_2 --workdir=runs/c100_at_16_2

The first command trains the teacher (WRN-40-2, no transfer), the second the WRN-16-2 student with
activation AT. Recipe of cifar10_wrn.

Published: top-1 accuracy (%) in RepDistiller's table, teacher 75.61, student 73.26, KD 74.92,
AT 74.08.

Protocol: trains on the whole training split and reports the final test accuracy, as the
paper did; no checkpoint is selected. --config.data.validation_split=5000 holds out the last
5,000 training images to rank the best checkpoints instead.

Expected on one H100, estimated from the FLOP and product counts of the student's step alone (not
measured: no GPU has been lent; the teacher's forward pass adds about a third of its own train
step): 0.58–1.5 s per epoch of 50,000 images, 2 min to 5 min for the 200 epochs, by
  python -m lpta.benchmark --config=configs/cifar100_at.py --estimate=h100 --epoch_examples=50000 --config.transfer.method=none
"""

from configs import attention_transfer


def get_config():
  config = attention_transfer.cifar_recipe('cifar100', depth=16, widen_factor=2)
  config.transfer.method = 'at'
  return config
