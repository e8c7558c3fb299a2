"""The fine-grained glimpse model at CPU scale, on RAM's Fashion-MNIST canvases: its trunk's
pretraining, then the glimpse model on that trunk.

Commands:
  python main.py --config=configs/canvas_fine_grained.py:TASK,trunk
  python main.py --config=configs/canvas_fine_grained.py:TASK,glimpse
TASK is translated or cluttered (the canvases of translated_fashion_mnist_ram.py and
cluttered_fashion_mnist_ram.py). The first trains in runs/canvas_fine_grained_TASK_trunk, which
the second starts from (config.init_from.workdir; set it to use another trunk run).

The model of Sermanet, Frome & Real (2014) as configs/stanford_dogs_glimpse.py builds it
(lpta/families/fine_grained.py), scaled to 60×60 grey canvases and 2 CPU cores:
  trunk: lpta's small CNN, 3×3 stride-2 convolutions of 16, 32 and 64 channels, every crop
    resized to 32×32 (its 4×4 feature map splits into 2×2 quadrants); the pretraining heads
    (on the centred squares of 15, 30 and 60 pixels) have 256 units;
  glimpse model: the frozen trunk sees the context (the canvas at 32×32); 3 glimpses (the
    paper's number) of 2 windows, 15 and 30 pixels (start_size 1), an LSTM of 256 units,
    attention of 128 units over the four quadrants, σ = 0.2, REINFORCE at weight 1.
Both train like the RAM configs (Adam lr 1e-3, cosine decay, global-norm clip 5, batch 128, the
last 5,000 training canvases rank the checkpoints), for NUM_EPOCHS each.

Published: none at this scale (the paper: 76.8% on Stanford Dogs with 3 glimpses).
Expected: see the glimpse studies of docs/glimpse_models.md (measured on 2 CPU cores).
"""

import ml_collections

from configs import canvas_baseline
from lpta import families

PARTS = ('trunk', 'glimpse')
NUM_EPOCHS = 10
TRUNK = {'trunk': 'small_cnn', 'small_trunk_widths': (16, 32, 64), 'glimpse_size': 32}


def get_config(arguments: str = 'translated,glimpse') -> ml_collections.ConfigDict:
  task, _, part = arguments.partition(',')
  if task not in canvas_baseline.TASKS or part not in PARTS:
    raise ValueError(f'{arguments!r} is not TASK,PART: TASK is one of '
                     f'{", ".join(canvas_baseline.TASKS)} and PART one of {", ".join(PARTS)}; '
                     'e.g. --config=configs/canvas_fine_grained.py:translated,trunk.')
  # The task's canvases and the RAM configs' optimiser, without RAM's policy group.
  config = canvas_baseline.get_config(f'{task},cnn')
  config.num_epochs = NUM_EPOCHS
  config.eval_every_epochs = 5
  if part == 'trunk':
    config.model = families.default_config('glimpse_trunk')
    config.model.update(TRUNK, head_units=256)
    config.num_attention_images = 0  # nothing to draw
  else:
    config.model = families.default_config('fine_grained_glimpse')
    config.model.update(TRUNK, num_glimpses=3, num_resolutions=2, start_size=1,
                        hidden_units=256, attention_units=128, location_std=0.2,
                        reinforce_weight=1.)
    config.init_from.workdir = f'runs/canvas_fine_grained_{task}_trunk'
  return config
