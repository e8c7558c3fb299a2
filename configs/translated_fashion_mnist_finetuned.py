"""Fine-tuning demonstration: the quickstart's trained network fine-tuned on the 60×60 canvases.

Commands (the first makes runs/quickstart, about 7 min on 2 CPU cores):
  python main.py --config=configs/quickstart.py
  python main.py --config=configs/translated_fashion_mnist_finetuned.py
  # the same network and steps from scratch, for comparison:
  python main.py --config=configs/translated_fashion_mnist_att3.py \
      --config.data.train_split='train[:20000]' --workdir=runs/translated_fashion_mnist_scratch

The network of configs/translated_fashion_mnist_att3.py (the quickstart's narrow VGG-att3) on
Fashion-MNIST items placed at random on 60×60 canvases, starting from the quickstart run, which
saw the same items centred at 28×28 (lpta/fine_tuning.py). Every convolution, BatchNorm and
attention module is loaded; the layer 'global' (FC-1) is re-initialised, because at 60×60 it
reads 2×2 features where the quickstart's read 1×1 (without `exclude` lpta refuses the other
shape); the classifier is loaded (the same 10 classes). Two short epochs: 15,000 canvases, the
next 5,000 rank the best checkpoint, the test canvases are reported.

Expected: fine-tuning beats the same steps from scratch by several points of test top-1, in about
7 min on 2 CPU cores; the measured figures, with their machine and date, are in
docs/using_runs.md ("Fine-tune a run").
"""

from configs import translated_fashion_mnist_att3


def get_config():
  config = translated_fashion_mnist_att3.get_config()
  config.data.train_split = 'train[:20000]'  # 15,000 to train on and 5,000 to validate
  config.init_from.workdir = 'runs/quickstart'
  config.init_from.exclude = ('global',)  # FC-1 reads 2×2 features at 60×60, 1×1 at 28×28
  return config
