"""The quickstart's attention network on the translated Fashion-MNIST canvases: do its maps find
the item?

Command:
  python main.py --config=configs/translated_fashion_mnist_att3.py
  python -m lpta.evaluate --workdir=runs/translated_fashion_mnist_att3 --eval=localisation \
      --eval.maps="('attention', 'gradcam')"

The narrow VGG-att3 of configs/quickstart.py (1/16 of the paper's width, attention before
pooling, maps of 60², 30², 15²) trained on the 60×60 canvases of
configs/translated_fashion_mnist_ram.py, which carry each item's box: the localisation evaluator
scores its learned maps, Grad-CAM on the same network and the centre baseline side by side
(docs/evaluation.md). Two epochs of SGD with a cosine schedule on 55,000
canvases; the last 5,000 rank the best checkpoint. No published counterpart: the LTPA paper
scores its maps on Object Discovery, which lpta cannot read offline.

Expected: about 86% test top-1 on 2 CPU cores; the measured accuracy, time and localisation
scores, with their machine and date, are in docs/evaluation.md.
"""

from configs import quickstart


def get_config():
  config = quickstart.get_config()
  config.data.name = 'translated_fashion_mnist'
  config.data.canvas_size = 60
  config.data.random_flip = False  # crops and flips would move the item away from its box
  config.num_epochs = 2
  return config
