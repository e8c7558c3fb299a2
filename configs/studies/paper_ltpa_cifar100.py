"""Study: Learn To Pay Attention's CIFAR-100 rows (Jetley et al. 2018, Table 1) at paper scale.

Command (on a machine with CIFAR-100 in TFDS and a GPU; not yet run):
  python -m lpta.study --config=configs/studies/paper_ltpa_cifar100.py

The paper configs, unchanged, seeds 0, 1, 2: VGG (configs/cifar100_vgg.py), VGG-att2-concat-pc
(cifar100_att2.py), VGG-att3-concat-pc (cifar100_att3.py) and the same att3 with dot-product
compatibility; each 300 epochs on the whole training split, the final test accuracy reported, as
in the paper. On one H100, 38 min to 1.9 h per att3 run (estimated in the configs'
docstrings; no GPU was lent). Published top-1 error (%): VGG 30.62, att2 24.18, att3-pc 22.97,
att3-dp 23.89. The claims and their verdicts are ltpa_classification's, judged here on the
paper's own data and scale.
"""

from configs.studies import ltpa_classification
from configs.studies.ltpa_classification import COMPARISONS, METRICS  # pylint: disable=unused-import

ARMS = {'vgg': {'config': 'configs/cifar100_vgg.py'},
        'att2': {'config': 'configs/cifar100_att2.py'},
        'att3': {'config': 'configs/cifar100_att3.py'},
        'att3_dp': {'config': 'configs/cifar100_att3.py', 'config.model.compatibility': 'dp'}}
SEEDS = ltpa_classification.SEEDS


def get_hyper(h):
  return h.product([h.sweep('arm', list(ARMS)), h.sweep('config.seed', SEEDS)])
