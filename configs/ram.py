"""The base of the recurrent glimpse configs: RAM on Fashion-MNIST items translated on 60×60 canvases.

Not meant to be run directly; translated_fashion_mnist_ram.py, cluttered_fashion_mnist_ram.py and
canvas_baseline.py start from it. RAM's 60×60 recipe (Mnih et al. 2014, §4.1): 12×12 patches at
3 scales (12, 24, 48 pixels), glimpse network 128/128/256 units, a ReLU RNN core of 256 units, a
Gaussian policy of fixed σ, the hybrid loss. lpta's training recipe: 20 epochs of SGD (lr 0.05,
momentum 0.9, cosine), the first location chosen by the policy from the zero state, one
trajectory per image with a logistic baseline, the REINFORCE term weighted 1e-3 (with SGD, the
policy's learning rate: 0.01 and 0.1 moved the glimpses away from the item, 0.1 to the border;
see the README's glimpse section). The canvases: lpta/data/canvases.py; every model field:
lpta/families/glimpse.py.
"""

import ml_collections

from configs import common


def get_config() -> ml_collections.ConfigDict:
  config = common.get_config()
  data = config.data
  data.name = 'translated_fashion_mnist'  # or 'cluttered_fashion_mnist'
  data.canvas_size = 60  # RAM's 60×60 canvases (configs/common.py has the canvas fields)
  data.random_crop_padding = 0  # crops and flips would move the item away from its box
  data.random_flip = False
  data.validation_split = 5000  # the last 5,000 training canvases rank the best checkpoint

  config.model = model = ml_collections.ConfigDict()
  model.name = 'ram'
  model.num_glimpses = 6  # T (RAM: 4, 6, 8)
  model.patch_size = 12  # side of the smallest patch, and of every patch after pooling
  model.num_scales = 3  # patches of 12, 24 and 48 pixels
  model.scale_factor = 2
  model.location_std = 0.11  # σ of the location policy, in half image sides
  model.glimpse_units = 128  # h_g
  model.location_units = 128  # h_l
  model.glimpse_output_units = 256  # g_t
  model.core = 'rnn'  # 'rnn' (RAM's ReLU RNN) or 'lstm'
  model.hidden_units = 256
  # Where glimpse 1 looks: 'learned' (the policy at the zero state h_0, as RAM's recurrent
  # attention does), 'centre', or 'random' (uniform).
  model.initial_location = 'learned'
  model.policy = 'learned'  # 'random': uniformly random locations (a baseline)
  model.location_hidden_units = 0  # 0: RAM's linear location network; > 0: one ReLU layer
  model.reinforce_weight = 1e-3  # REINFORCE term, averaged over the batch
  model.baseline_weight = 1.  # log loss of the baseline, a logistic regression of the reward
  model.eval_samples = 7  # sampled trajectories averaged for sampled_accuracy
  # M trajectories per training image; M >= 2 replaces the learned baseline by the mean reward
  # of the image's other trajectories, and costs M times as much per image.
  model.train_trajectories = 1

  config.optimizer.learning_rate = 0.05
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 0.
  config.optimizer.schedule = 'cosine'
  config.batch_size = 128
  config.eval_batch_size = 1000
  config.num_epochs = 20
  config.eval_every_epochs = 4
  return config
