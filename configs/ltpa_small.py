"""Learn To Pay Attention's networks at CPU scale, with the evaluators that test the paper's claims
run at the end of training: the arms of the LTPA studies (configs/studies/ltpa_*.py).

Command:
  python main.py --config=configs/ltpa_small.py:DATA,MODEL

DATA is
  fashion_mnist: configs/quickstart.py's recipe (28×28, 3 epochs of SGD, lr 0.1, cosine, the last
    5,000 training images as the validation split); at the end, FGSM and PGD accuracy against ε
    on the first 2,000 and 500 test images, and linear probes of the frozen descriptors on the
    digits, which the network never saw (claims 3 and 4 of the paper);
  translated: configs/translated_fashion_mnist_att3.py's recipe (the 60×60 canvases, 2 epochs);
    at the end, the localisation evaluator on the first 2,000 test canvases: pointing, energy in
    the box, box IoU and accuracy, Jaccard of the binarised map, for every map kind the network
    has and the centre baseline (claim 2).
MODEL is
  vgg: the paper's baseline VGG-16 (all five pools, no attention);
  att2, att3: (VGG-att2/att3)-concat-pc, attention before pooling;
  att3_dp: VGG-att3 with the dot-product compatibility <l, g>.
Every network is at 1/16 of the paper's width (4 to 32 channels) without dropout, as the
quickstart. Each DATA,MODEL trains in its own workdir, runs/ltpa_small_DATA_MODEL.

Published (CIFAR-100 top-1 error, the paper's Table 1): VGG 30.62, VGG-att2-pc 24.18,
VGG-att3-pc 22.97, VGG-att3-dp 23.89; the paper's scale: configs/cifar100_*.py.
Expected: see docs/studies.md (the LTPA studies).
"""

import ml_collections

from configs import quickstart
from configs import translated_fashion_mnist_att3
from lpta import families

BASES = {'fashion_mnist': quickstart, 'translated': translated_fashion_mnist_att3}
ATTACK_EPSILONS = (0., 0.01, 0.02, 0.05, 0.1)  # FGSM's and PGD's, in pixel units
MODELS = {
    'vgg': {'name': 'vgg'},
    'att2': {'num_levels': 2},
    'att3': {'num_levels': 3},
    'att3_dp': {'num_levels': 3, 'compatibility': 'dp'},
}


def _evals(data: str, model: str, num_epochs: int) -> ml_collections.ConfigDict:
  """The evaluators of the paper's claims, once, at the end of training."""
  end = {'every_epochs': num_epochs}
  if data == 'translated':
    maps = ('activation', 'gradcam') if model == 'vgg' else ('attention', 'activation', 'gradcam')
    return ml_collections.ConfigDict({'localisation': {**end, 'maps': maps}})
  return ml_collections.ConfigDict({
      'fgsm': {**end, 'epsilons': ATTACK_EPSILONS},
      'pgd': {**end, 'epsilons': ATTACK_EPSILONS},
      'probe': {**end, 'dataset': 'digits'}})


def get_config(arguments: str = 'fashion_mnist,att3') -> ml_collections.ConfigDict:
  data, _, model = arguments.partition(',')
  if data not in BASES or model not in MODELS:
    raise ValueError(f'{arguments!r} is not DATA,MODEL: DATA is one of {", ".join(BASES)} and '
                     f'MODEL one of {", ".join(MODELS)}; e.g. '
                     '--config=configs/ltpa_small.py:fashion_mnist,vgg.')
  config = BASES[data].get_config()
  fields = dict(MODELS[model])
  name = fields.pop('name', config.model.name)
  width, dropout = config.model.width, config.model.dropout
  config.model = families.default_config(name)
  config.model.update(fields, width=width, dropout=dropout)
  config.evals = _evals(data, model, config.num_epochs)
  return config
