"""The base of every Learn To Pay Attention config: (VGG-att3)-concat-pc on CIFAR-100.

Not meant to be run directly; the experiment configs (cifar100_att3.py, ...) start from it. The
official recipe: SGD lr 0.1, momentum 0.9, weight decay 5e-4, batch 128, 300 epochs, the rate
halved every 25 epochs, random crops (4-pixel padding) and flips; every field of the model is
documented below and in lpta/families/ltpa.py.
"""

import ml_collections

from configs import common


def get_config() -> ml_collections.ConfigDict:
  config = common.get_config()
  config.data.name = 'cifar100'
  config.model = model = ml_collections.ConfigDict()
  model.name = 'attention_vgg'  # 'attention_vgg' (LTPA) or 'vgg' (baseline VGG-16)
  model.num_levels = 3  # att3: local features at convs 7, 10, 13; att2: 10, 13; att1: 13; 0: none
  model.compatibility = 'pc'  # 'pc': <u, l + g>; 'dp': <l, g>
  model.normalisation = 'softmax'  # 'softmax' over positions; 'sigmoid' gates + average pooling
  model.projection = 'g_down'  # conv 7 is narrower than g: 'g_down' (official) or 'l_up' (port)
  model.score_bias = True  # bias of u (official: yes; PyTorch port: no)
  model.placement = 'before'  # local features taken 'before' or 'after' the following max-pool
  model.head = 'concat'  # 'concat': one classifier on [g_a^1..g_a^n]; 'indep': one per level
  model.head_preactivation = True  # BN-ReLU-Dropout on each g_a before the classifier (official)
  model.dropout = True  # the official dropout rates (.3/.4 in the backbone, .5 before FC-1)
  model.width = 1.0  # channel multiplier; 1.0 is the paper's network
  model.bn_epsilon = 1e-3  # official Torch code; the PyTorch port uses 1e-5
  # The official trainer's backward pass (seed-systems §1.11): gradients averaged, not summed,
  # where g feeds the attention modules and where each tapped map branches off. Off: autodiff.
  model.junction_gradient_averaging = False
  # Side and stride of the first max-pool (after conv 7; after conv 2 in the VGG baseline): 2, or
  # 5 for 80×80 CUB crops so that every later map has the 32×32 network's size.
  model.first_pool_size = 2
  # = the official lr 1.0 with Torch7's damped momentum (seed-systems §1.10)
  config.optimizer.learning_rate = 0.1
  config.optimizer.schedule = 'step'
  config.optimizer.decay_factor = 0.5  # halve ...
  config.optimizer.decay_every_epochs = 25  # ... every 25 epochs
  config.num_epochs = 300
  return config


def pytorch_port(config: ml_collections.ConfigDict, placement: str) -> ml_collections.ConfigDict:
  """The PyTorch port's architecture choices, attention 'before' or 'after' pooling."""
  model = config.model
  model.projection = 'l_up'
  model.score_bias = False
  model.head_preactivation = False
  model.dropout = False
  model.bn_epsilon = 1e-5
  model.placement = placement
  return config
