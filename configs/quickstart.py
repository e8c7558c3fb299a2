"""Quickstart: a narrow VGG-att3 on Fashion-MNIST that trains on a laptop CPU in minutes.

Command:
  python main.py --config=configs/quickstart.py

The LTPA attention network ((VGG-att3)-concat-pc, attention before pooling) at 1/16 of the
paper's width (4 to 32 channels), without dropout, on 28×28 Fashion-MNIST (prepared offline from
the Debian package dataset-fashion-mnist when it is installed). Three epochs of SGD with a cosine
schedule on the first 55,000 training images; the last 5,000 are the validation split that ranks
the best checkpoint. Maps of 28², 14², 7².

Expected: about 90% test top-1 (the final evaluation) in under 10 minutes on 2 CPU cores; the
figures measured, with their machine and date, are in the README (Results). Two epochs
(--config.num_epochs=2) take a third less time and gave about half a point less.
"""

from configs import ltpa


def get_config():
  config = ltpa.get_config()
  config.data.name = 'fashion_mnist'
  config.data.validation_split = 5000  # the last 5,000 training images rank the best checkpoint
  config.data.random_crop_padding = 0
  config.model.width = 1 / 16
  config.model.dropout = False
  config.optimizer.schedule = 'cosine'
  config.optimizer.learning_rate = 0.1
  config.num_epochs = 3
  config.eval_batch_size = 1000
  return config
