"""The fine-grained glimpse model on Stanford Dogs (Sermanet, Frome & Real 2014, as reworked by the
Visual-Attention-Pytorch repository; seed-systems §3).

Command:
  python main.py --config=configs/stanford_dogs_glimpse.py --config.model.trunk_workdir=runs/dogs_trunk

A frozen ResNet-50 trunk pretrained by configs/stanford_dogs_glimpse_trunk.py (its workdir in
config.model.trunk_workdir) sees a 96×96 context image of the 224×224 square crop; soft attention
over its four quadrants sets the mean of each location; k = 2 glimpses of sides 112 and 224
(start_size 2), each resized to 96, feed an LSTM of 2048 units; one glimpse (the repository's
default). RAM's hybrid loss with the REINFORCE term averaged over the batch (the repository summed
it), σ = 0.2, Adam lr 1e-4, betas (0.5, 0.999), batch 128, 100 epochs; 7 sampled trajectories at
evaluation. The last 1,200 training images rank the checkpoints (the repository selected on test).

Published: 76.2% (repository, k = 2, start_size = 2); 76.8% (paper, 3 glimpses, Inception).
Expected: not yet run.
"""

from configs import common
from configs import stanford_dogs_glimpse_trunk


def get_config():
  config = stanford_dogs_glimpse_trunk.get_config()
  model = config.model
  model.name = 'fine_grained_glimpse'
  del model.head_units
  model.trunk_workdir = common.placeholder(str)  # a glimpse_trunk run's workdir; None: random trunk
  model.trunk_frozen = True  # no update and inference-mode BatchNorm
  model.num_glimpses = 1
  model.num_resolutions = 2  # k
  model.start_size = 2  # glimpse sides (S/4)·start_size·2^j: 112 and 224
  model.location_std = 0.2
  model.hidden_units = 2048
  model.attention_units = 1024
  model.reinforce_weight = 1.
  model.baseline_weight = 1.
  model.eval_samples = 7
  config.num_attention_images = 8
  return config
