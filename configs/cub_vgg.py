"""The baseline VGG-16 on CUB-200-2011, fine-tuned from the CIFAR-100 VGG run.

Commands:
  python main.py --config=configs/cifar100_vgg.py
  python main.py --config=configs/cub_vgg.py --config.init_from.workdir=runs/cifar100_vgg

configs/cub_att2.py's data, recipe and fine-tuning for the VGG without attention. Its first pool
(after conv 2) is 5×5 with stride 5, so the 80×80 crops shrink 80 → 16 → 8 → 4 → 2 → 1 and every
CIFAR-100 array loads unchanged but the 200-way classifier.

Published: 34.81% top-1 test error (the official script's log).
Expected: not yet run in lpta (CUB is not available offline here).

Expected on one H100, estimated from the FLOP and product counts of the train step (not measured:
no GPU has been lent): 0.14–0.39 s per epoch of 5,400 images, 1 min to 2 min for the 320 epochs,
by
  python -m lpta.benchmark --config=configs/cub_vgg.py --estimate=h100 --epoch_examples=5400
"""

from configs import cub_att2
from configs import ltpa


def get_config():
  config = ltpa.get_config()
  config.model.name = 'vgg'
  return cub_att2.cub(config, 'runs/cifar100_vgg')
