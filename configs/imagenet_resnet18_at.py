"""A ResNet-18 student on ImageNet with activation AT from a ResNet-34 teacher (the AT paper).

Commands (train the teacher with configs/imagenet_resnet.py first):
  python main.py --config=configs/imagenet_resnet.py --config.model.depth=34 --workdir=runs/imagenet_resnet34
  python main.py --config=configs/imagenet_resnet18_at.py --config.teacher.workdir=runs/imagenet_resnet34 --workdir=runs/imagenet_resnet18_at

Recipe of imagenet_resnet (100 epochs, × 0.1 at 30, 60 and 90, weight decay 1e-4). Attention is
transferred at the four group outputs (56², 28², 14², 7²) in the released code's form with
β = 1000; the paper states no ImageNet β. Unlike the original, whose teacher was a pretrained
ResNet-34 with BatchNorm folded into the convolutions, the teacher is an lpta run.
--config.transfer.method=kd or at_kd selects distillation.

Published: top-1 / top-5 validation error (%) 29.3 / 10.0 with AT, against 30.4 / 10.8 for
ResNet-18 alone (the AT code's README; a later PyTorch rerun did not match them exactly).

Expected on one H100, estimated from the FLOP and product counts of the student's step alone (not
measured: no GPU has been lent; the teacher's forward pass adds about a third of its own train
step): 92–272 s per epoch of 1,281,167 images, 2.5 h to 7.6 h for the 100 epochs, by
  python -m lpta.benchmark --config=configs/imagenet_resnet18_at.py --estimate=h100 --epoch_examples=1281167 --config.transfer.method=none
"""

from configs import attention_transfer


def get_config():
  config = attention_transfer.imagenet_recipe(depth=18)
  config.transfer.method = 'at'
  return config
