"""RAM with 6 glimpses on Fashion-MNIST items translated on 60×60 canvases with 4 pieces of clutter.

Command:
  python main.py --config=configs/cluttered_fashion_mnist_ram.py

RAM's 60×60 cluttered task (Mnih et al. 2014, §4.1, Table 2) with Fashion-MNIST instead of MNIST
digits: before each item, 4 random 8×8 pieces of other images are scattered on the canvas.
Everything else as configs/translated_fashion_mnist_ram.py; the baselines on the same canvases:
configs/canvas_baseline.py.

Published (MNIST digits, not Fashion-MNIST): RAM 6 glimpses 4.08% error, 8 random glimpses 14.4%,
Conv 8.09%, FC-256 11.96%.
Expected: see the canvas table of docs/glimpse_models.md (measured on 2 CPU cores).
"""

from configs import ram


def get_config():
  config = ram.get_config()
  config.data.name = 'cluttered_fashion_mnist'
  config.data.clutter_pieces = 4
  return config
