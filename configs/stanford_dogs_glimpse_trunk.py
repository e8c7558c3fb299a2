"""Pretraining of the fine-grained glimpse model's trunk on Stanford Dogs (pretrain.py of
rohithreddy024/Visual-Attention-Pytorch).

Command:
  python main.py --config=configs/stanford_dogs_glimpse_trunk.py --workdir=runs/dogs_trunk

A ResNet-50 with a 5×5 stride-1 stem sees the centred squares of sides S/4, S/2 and S of each
224×224 square crop (high, medium, low resolution), each resized to 96×96; four heads (on
high+medium, high+low, medium+low and all three) train on the sum of their cross-entropies, Adam
lr 1e-4, betas (0.5, 0.999), batch 128, 100 epochs, flips. The repository started from ImageNet
weights, which lpta cannot load yet (so this trains from scratch), and selected on the test set;
here the last 1,200 training images rank the checkpoints. Stanford Dogs must be prepared first
(TFDS `stanford_dogs`; offline: put images.tar, annotation.tar and lists.tar in manual_dir). The
glimpse model (configs/stanford_dogs_glimpse.py) starts from this run's trunk.

Expected: not yet run (the repository reports no pretraining accuracy).

Expected on one H100, estimated from the FLOP and product counts of the train step (not measured:
no GPU has been lent): 4.1–12 s per epoch of 10,800 images, 7 min to 20 min for the 100 epochs, by
  python -m lpta.benchmark --config=configs/stanford_dogs_glimpse_trunk.py --estimate=h100 --epoch_examples=10800
"""

from configs import common
from lpta import families


def get_config():
  config = common.get_config()
  data = config.data
  data.name = 'stanford_dogs'
  data.image_size = 224  # the square crop; glimpses are cut from it
  data.random_crop_padding = 0  # the square crop is already random
  data.validation_split = 1200  # 10 of the 100 training images per breed rank the checkpoints
  # A ResNet-50 trunk, crops resized to 96×96, heads of 1,024 units (lpta/families/fine_grained.py
  # declares and documents the fields).
  config.model = families.default_config('glimpse_trunk')
  config.optimizer.name = 'adam'
  config.optimizer.learning_rate = 1e-4
  config.optimizer.adam_betas = (0.5, 0.999)
  config.optimizer.weight_decay = 0.
  config.optimizer.schedule = 'constant'
  config.num_epochs = 100
  config.eval_batch_size = 256
  config.num_attention_images = 0  # nothing to draw
  return config
