"""Study: do attention networks degrade less than the VGG under adversarial attack (Learn To Pay
Attention, claim 3)?

Command:
  python -m lpta.study --config=configs/studies/ltpa_robustness.py

Reads the VGG and VGG-att3 runs of ltpa_classification.py (training them if that study has not):
FGSM and PGD (10 steps) accuracy at ε = 0.01, 0.02, 0.05, 0.1 in pixel units on the first 2,000
and 500 test images, mean ± sd over seeds 0, 1, 2; the table is results_ltpa_robustness.* in that
study's folder. Claim (Jetley et al. 2018, Fig. 6, on CIFAR): the attention network keeps the
higher accuracy under attack.
"""

from configs.ltpa_small import ATTACK_EPSILONS
from configs.studies.ltpa_classification import ARMS, SEEDS  # pylint: disable=unused-import

SHARES_RUNS_WITH = 'ltpa_classification'
# The evaluators' result names: accuracy_eps_<ε:g>.
METRICS = ('test_accuracy', *(f'{attack}/accuracy_eps_{epsilon:g}' for attack in ('fgsm', 'pgd')
                              for epsilon in ATTACK_EPSILONS))
COMPARISONS = tuple(
    ('att3', 'vgg', f'{attack}/accuracy_eps_{epsilon:g}',
     f'LTPA Fig. 6: att3 degrades less under {attack.upper()}')
    for attack in ('fgsm', 'pgd') for epsilon in ATTACK_EPSILONS if epsilon > 0)


def get_hyper(h):
  return h.product([h.sweep('arm', ['vgg', 'att3']), h.sweep('config.seed', SEEDS)])
