"""A WRN-16-2 on Fashion-MNIST: the attention-transfer pipeline at CPU scale (the teacher).

Command:
  python main.py --config=configs/fashion_mnist_wrn.py --workdir=runs/t

WRN-16-2 (groups at 28², 14², 7²) trained for two epochs on the first 15,000 training images
(--config.data.train_split=train for all 60,000), SGD lr 0.1 with a cosine schedule, flips, and
an evaluation on the full test set after each epoch. The student trains one epoch on the same
images (fashion_mnist_at). A WRN-16-2 trains at about 57 images/s on 2 CPU
cores, so the whole training split would take 18 minutes per epoch. The student's config is
fashion_mnist_at.

Expected: see the Fashion-MNIST table of docs/attention_transfer.md (measured on 2 CPU cores).
"""

from configs import attention_transfer


def get_config():
  config = attention_transfer.fashion_mnist_recipe(depth=16, widen_factor=2)
  config.num_epochs = 2
  return config
