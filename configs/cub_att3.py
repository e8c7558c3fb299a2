"""(VGG-att3)-concat-pc on CUB-200-2011, fine-tuned from the CIFAR-100 att3 run.

Commands:
  python main.py --config=configs/cifar100_att3.py
  python main.py --config=configs/cub_att3.py --config.init_from.workdir=runs/cifar100_att3

configs/cub_att2.py's data, recipe and fine-tuning, with three attention levels. The official att3
CUB file (VGGNet/models/models_CUBS200/3_level_atten_1global) is inconsistent: a fractional "2.5"
ceil-pool and a ×2 upsampling after conv 7 whose sizes do not reconcile for 80×80 inputs with an
attention module that expects 32×32 maps. lpta makes it consistent the way the att2 file does: the
same 5×5 pool of stride 5 after conv 7, with L1 taken before it (attention over conv 7's full 80×80
map, 256 channels), L2 at conv 10 (16×16) and L3 at conv 13 (8×8). Every CIFAR-100 att3 array then
loads unchanged (attention modules have no size-dependent parameters) but the 200-way classifier.

Published: 26.79% top-1 test error (the official script's log).
Expected: not yet run in lpta (CUB is not available offline here).

Expected on one H100, estimated from the FLOP and product counts of the train step (not measured:
no GPU has been lent): 2.9–8.5 s per epoch of 5,400 images, 15 min to 45 min for the 320 epochs,
by
  python -m lpta.benchmark --config=configs/cub_att3.py --estimate=h100 --epoch_examples=5400
"""

from configs import cub_att2
from configs import ltpa


def get_config():
  return cub_att2.cub(ltpa.get_config(), 'runs/cifar100_att3')
