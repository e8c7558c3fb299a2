"""A WRN-16-2 on Fashion-MNIST: the attention-transfer pipeline at CPU scale (the teacher).

Command:
  python main.py --config=configs/fashion_mnist_wrn.py --workdir=runs/t

WRN-16-2 (groups at 28², 14², 7²) trained for two epochs on the first 15,000 training images
(--config.data.train_split=train for all 60,000), SGD lr 0.1 with a cosine schedule, flips, and
an evaluation on the full test set after each epoch. The student trains one epoch on the same
images (fashion_mnist_at). A WRN-16-2 trains at about 57 images/s on 2 CPU
cores, so the whole training split would take 18 minutes per epoch. The student's config is
fashion_mnist_at.

Expected: see the README's attention-transfer table (measured on 2 CPU cores).
"""

import ml_collections

from configs import default


def fashion_mnist_wrn(depth: int, widen_factor: float):
  """The Fashion-MNIST recipe shared by the teacher and the student."""
  config = default.get_config()
  config.data.name = 'fashion_mnist'
  config.data.random_crop_padding = 0
  config.data.train_split = 'train[:15000]'
  config.model = ml_collections.ConfigDict(dict(name='wrn', depth=depth,
                                                widen_factor=widen_factor))
  config.optimizer.schedule = 'cosine'
  config.num_epochs = 1
  config.eval_batch_size = 1000
  return config


def get_config():
  config = fashion_mnist_wrn(depth=16, widen_factor=2)
  config.num_epochs = 2
  return config
