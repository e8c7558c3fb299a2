"""An ImageNet ResNet-18 or ResNet-34: the student baseline and the teacher of the AT paper's ImageNet row.

Commands (the teacher, then the student baseline):
  python main.py --config=configs/imagenet_resnet.py --config.model.depth=34 --workdir=runs/imagenet_resnet34
  python main.py --config=configs/imagenet_resnet.py --workdir=runs/imagenet_resnet18

ImageNet is prepared once by TFDS from ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar, put
in --config.data.manual_dir, then streamed from disk (lpta/data/streamed.py). The recipe of
szagoruyko/attention-transfer (imagenet.py): SGD lr 0.1, momentum 0.9, weight decay 1e-4,
batch 256, 100 epochs, the rate × 0.1 at epochs 30, 60 and 90; 224² random-resized crops and
flips; evaluation on the 50,000 validation images (resize 256, centre crop 224), logged as
test_accuracy and test_top5_accuracy. --config.half_precision=True computes in bfloat16;
--config.data.image_size=128 trains on smaller crops.

Published: top-1 / top-5 validation error (%) of ResNet-18: 30.4 / 10.8 (the AT code's README).
ResNet-18 has 11,689,512 parameters, ResNet-34 21,797,672.

Expected on one H100, estimated from the FLOP and product counts of the train step (not measured:
no GPU has been lent): 92–272 s per epoch of 1,281,167 images, 2.5 h to 7.6 h for the 100 epochs,
by
  python -m lpta.benchmark --config=configs/imagenet_resnet.py --estimate=h100 --epoch_examples=1281167
"""

from configs import attention_transfer


def get_config():
  return attention_transfer.imagenet_recipe(depth=18)
