"""The baselines of RAM's Table 2 on the Fashion-MNIST canvases, trained like the RAM configs.

Command:
  python main.py --config=configs/canvas_baseline.py:TASK,MODEL

TASK is translated or cluttered (the canvases of translated_fashion_mnist_ram.py and
cluttered_fashion_mnist_ram.py); MODEL is one of
  fc64, fc256: two ReLU layers of 64 or 256 units on the whole 60×60 canvas (RAM's FC rows);
  cnn: two 5×5 ReLU convolutions of stride 2 with 16 and 32 channels, a ReLU layer of 256 units
    (lpta's convolutional baseline);
  context: fc256 on the canvas average-pooled by 5 to 12×12, the size of RAM's patches (a model
    that sees only a low-resolution view of the whole canvas);
  random_glimpses: the RAM of the task config (6 glimpses) with every location uniformly random
    (RAM's "random glimpses" row, which had 8).
Optimiser, schedule and epochs are those of the RAM configs. The default is translated,cnn, e.g.
  python main.py --config=configs/canvas_baseline.py:cluttered,random_glimpses
trains in runs/canvas_baseline_cluttered_random_glimpses: each TASK,MODEL has its own default
workdir (main.py adds the config's argument to the file name).

Published (MNIST digits, 60×60): translated FC-64 6.42, FC-256 2.63, Conv 1.62% error; cluttered
FC-64 28.58, FC-256 11.96, Conv 8.09, 8 random glimpses 14.4% error.
Expected: see the canvas table of docs/glimpse_models.md (measured on 2 CPU cores).
"""

import ml_collections

from configs import ram

TASKS = ('translated', 'cluttered')
MODELS = {
    'fc64': {'name': 'mlp', 'hidden_units': (64, 64), 'input_pool': 1},
    'fc256': {'name': 'mlp', 'hidden_units': (256, 256), 'input_pool': 1},
    'cnn': {'name': 'cnn', 'channels': (16, 32), 'kernel_size': 5, 'hidden_units': 256},
    'context': {'name': 'mlp', 'hidden_units': (256, 256), 'input_pool': 5},
}


def get_config(arguments: str = 'translated,cnn') -> ml_collections.ConfigDict:
  task, _, model = arguments.partition(',')
  if task not in TASKS or model not in (*MODELS, 'random_glimpses'):
    raise ValueError(f'{arguments!r} is not TASK,MODEL: TASK is one of {", ".join(TASKS)} and '
                     f'MODEL one of {", ".join(MODELS)}, random_glimpses; e.g. '
                     '--config=configs/canvas_baseline.py:cluttered,cnn.')
  config = ram.get_config()
  if task == 'cluttered':
    config.data.name = 'cluttered_fashion_mnist'
    config.data.clutter_pieces = 4
  if model == 'random_glimpses':
    config.model.policy = 'random'
  else:
    config.model = ml_collections.ConfigDict(MODELS[model])
    config.optimizer.groups = ml_collections.ConfigDict()  # a whole-image network has no policy
  return config
