"""A WRN-16-1 student on CIFAR-10 with attention transfer from a trained teacher (Table 1).

Commands (train a teacher with configs/cifar10_wrn.py first):
  python main.py --config=configs/cifar10_at.py --config.teacher.workdir=runs/wrn_16_2 --workdir=runs/at_16_1_16_2
  python main.py --config=configs/cifar10_at.py --config.teacher.workdir=runs/wrn_40_1 --workdir=runs/at_16_1_40_1
  python main.py --config=configs/cifar10_at.py --config.teacher.workdir=runs/wrn_16_2 --config.transfer.method=kd --workdir=runs/kd_16_1_16_2

--config.transfer.method picks at (default), kd, at_kd (with --config.transfer.beta_schedule=linear
for a decaying β), grad_at or flip_sym (no teacher). The recipe is cifar10_wrn's. AT uses the
released code's form: β = 1000 times the mean squared difference of the normalised attention maps
at the three group outputs. KD uses T = 4 and α = 0.9.

Published: test error (%) of the WRN-16-1 student alone 8.77. With a WRN-40-1 teacher: AT 8.25,
KD 8.39. With a WRN-16-2 teacher: AT 7.93, KD 7.41, AT+KD 7.51; these three cells are not verified
against the paper here.

Protocol: trains on the whole training split and reports the final test accuracy, as the
paper did; no checkpoint is selected. --config.data.validation_split=5000 holds out the last
5,000 training images to rank the best checkpoints instead.

Expected on one H100, estimated from the FLOP and product counts of the student's step alone (not
measured: no GPU has been lent; the teacher's forward pass adds about a third of its own train
step): 0.42–1.1 s per epoch of 50,000 images, 1 min to 4 min for the 200 epochs, by
  python -m lpta.benchmark --config=configs/cifar10_at.py --estimate=h100 --epoch_examples=50000 --config.transfer.method=none
"""

from configs import attention_transfer


def get_config():
  config = attention_transfer.cifar_recipe('cifar10', depth=16, widen_factor=1)
  config.transfer.method = 'at'
  return config
