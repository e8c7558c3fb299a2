"""The base of the recurrent glimpse configs: RAM on Fashion-MNIST items translated on 60×60 canvases.

Not meant to be run directly; translated_fashion_mnist_ram.py, cluttered_fashion_mnist_ram.py and
canvas_baseline.py start from it. RAM's 60×60 model (Mnih et al. 2014, §4.1): 12×12 patches at 3
scales (12, 24, 48 pixels), glimpse network 128/128/256 units, a ReLU RNN core of 256 units, 6
glimpses, a Gaussian policy of fixed σ, the hybrid loss. The canvases: lpta/data/canvases.py;
every model field: lpta/families/glimpse.py.

lpta's training recipe, chosen by measurement (docs/glimpse_models.md has every recipe tried):
  - REINFORCE at the paper's weight 1, reaching the core and the glimpse network as in the paper's
    Eq. 2 (policy_gradient 'core'): with the state behind a stop-gradient, the policy read
    features trained for classification only and its glimpses drifted away from the item;
  - 4 trajectories per image, each one's baseline the mean reward of the other three: the
    single-trajectory runs never found the item (1.8–2.1× the centre's distance);
  - Adam, lr 1e-3 with a cosine decay, gradients clipped to global norm 5, as in tfRAM; the
    location network (parameter group 'policy') at lr 1e-4: at 1e-3 its noisy updates walked
    the glimpses away again after epoch 4;
  - σ = 0.22 (tfRAM's), the location network starting at zero (the untrained policy looks at the
    centre), the canvas outside the image black;
  - 20 epochs; the last 5,000 training canvases rank the best checkpoint.
"""

import ml_collections

from configs import common
from lpta import families


def get_config() -> ml_collections.ConfigDict:
  config = common.get_config()
  data = config.data
  data.name = 'translated_fashion_mnist'  # or 'cluttered_fashion_mnist'
  data.canvas_size = 60  # RAM's 60×60 canvases (lpta/data/canvases.py declares the fields)
  data.random_crop_padding = 0  # crops and flips would move the item away from its box
  data.random_flip = False
  data.validation_split = 5000  # the last 5,000 training canvases rank the best checkpoint

  # RAM-6 (lpta/families/glimpse.py declares and documents every field).
  config.model = model = families.default_config('ram')
  model.location_std = 0.22
  model.location_init = 'zero'
  model.policy_gradient = 'core'
  model.reinforce_weight = 1.
  model.train_trajectories = 4
  model.padding = 'black'

  optimizer = config.optimizer
  optimizer.name = 'adam'
  optimizer.learning_rate = 1e-3
  optimizer.weight_decay = 0.
  optimizer.schedule = 'cosine'
  optimizer.clip_global_norm = 5.
  # The location network's own rate (its other fields are those above).
  optimizer.groups.policy = ml_collections.ConfigDict({'learning_rate': 1e-4})
  config.batch_size = 128
  config.eval_batch_size = 1000
  config.num_epochs = 20
  config.eval_every_epochs = 4
  return config
