"""(RN-att2)-concat-pc on CIFAR-100: Learn To Pay Attention's attention ResNet-164.

Command:
  python main.py --config=configs/cifar100_rn_att2.py

The official Torch RN-att2 (RESNET/models/Resnet-att2; lpta/models/attention_resnet.py): a
pre-activation bottleneck ResNet-164 with attention at the outputs of stages 2 (16×16×128) and 3
(8×8×256), the global feature from a conv-and-pool branch on stage 3, and a BN-ReLU-Dropout .3
head on the concatenated descriptors. The official recipe (train_attenunit_2levels.lua,
scripts/main.sh): SGD lr 0.1, Nesterov momentum 0.9 without dampening, weight decay 5e-4, batch
64, 200 epochs, the rate × 0.2 at epochs 60, 120 and 160; random crops (4-pixel padding) and
flips. Differences: lpta pads the crops with zeros (the official code reflects) and draws them per
image (officially one offset per batch), normalises per channel (officially the whitened t7
files; --config.data.zca=True is closer), keeps the momentum at the rate drops (officially
reset) and does not average gradients at the branch points (RESNET/train_attenunit_2levels.lua).
2,430,134 parameters (cifar10_rn_att2: 2,395,484).

Published: the paper's RN-att2 cells (Jetley et al. 2018, Table 1) are not verified here.
Expected: not yet run.

Protocol: trains on the whole training split and reports the final test accuracy, as the
paper did; no checkpoint is selected. --config.data.validation_split=5000 holds out the last
5,000 training images to rank the best checkpoints instead.

Expected on one H100, estimated from the FLOP and product counts of the train step (not measured:
no GPU has been lent): 8.7–22 s per epoch of 50,000 images, 29 min to 1.2 h for the 200 epochs, by
  python -m lpta.benchmark --config=configs/cifar100_rn_att2.py --estimate=h100 --epoch_examples=50000
"""

import ml_collections

from configs import common
from lpta import families


def get_config() -> ml_collections.ConfigDict:
  config = common.get_config()
  config.data.name = 'cifar100'
  # RN-att2 (official layout), every field at its default (lpta/families/ltpa.py declares and
  # documents them); 'preact_resnet' is the baseline RN-164 (`baseline` below).
  config.model = families.default_config('attention_resnet')
  config.optimizer.nesterov = True
  config.optimizer.schedule = 'multistep'
  config.optimizer.decay_factor = 0.2
  config.optimizer.decay_epochs = (60, 120, 160)
  config.batch_size = 64
  config.num_epochs = 200
  return config


def baseline(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The same recipe for the pre-activation ResNet-164 without attention."""
  config.model = families.default_config('preact_resnet')
  return config
