"""The fine-grained glimpse model on Stanford Dogs (Sermanet, Frome & Real 2014, as reworked by
rohithreddy024/Visual-Attention-Pytorch, main.py and models.py).

Command:
  python main.py --config=configs/stanford_dogs_glimpse.py --config.init_from.workdir=runs/dogs_trunk

A frozen ResNet-50 trunk pretrained by configs/stanford_dogs_glimpse_trunk.py (its workdir in
config.init_from.workdir: fine-tuning loads the trunk, the rest starts afresh) sees a 96×96
context image of the 224×224 square crop; soft attention over its four quadrants sets the mean of
each location; k = 2 glimpses of sides 112 and 224 (start_size 2), each resized to 96, feed an
LSTM of 2048 units; one glimpse (the repository's default). RAM's hybrid loss with the REINFORCE
term averaged over the batch (the repository summed it), σ = 0.2, Adam lr 1e-4, betas (0.5,
0.999), batch 128, 100 epochs; 7 sampled trajectories at evaluation. The last 1,200 training
images rank the checkpoints (the repository selected on test). Without init_from the trunk is
random.

Published: 76.2% (repository, k = 2, start_size = 2); 76.8% (paper, 3 glimpses, Inception).
Expected: not yet run.

Expected on one H100, estimated from the FLOP and product counts of the train step (not measured:
no GPU has been lent): 1.5–4.3 s per epoch of 10,800 images, 2 min to 7 min for the 100 epochs, by
  python -m lpta.benchmark --config=configs/stanford_dogs_glimpse.py --estimate=h100 --epoch_examples=10800
"""

from configs import stanford_dogs_glimpse_trunk
from lpta import families


def get_config():
  config = stanford_dogs_glimpse_trunk.get_config()
  # The repository's model (lpta/families/fine_grained.py declares and documents the fields).
  config.model = families.default_config('fine_grained_glimpse')
  config.num_attention_images = 8
  return config
