"""Study: attention transfer's CIFAR-10 row WRN-16-1 ← WRN-16-2 (Zagoruyko & Komodakis 2017,
Table 1) at paper scale.

Command (on a machine with CIFAR-10 in TFDS and a GPU; not yet run):
  python -m lpta.study --config=configs/studies/paper_at_cifar10.py

Per seed 0, 1, 2: a WRN-16-2 teacher (configs/cifar10_wrn.py), then WRN-16-1 students
(configs/cifar10_at.py) from the teacher of the same seed: alone, with activation AT at the
paper's β = 1000 (the released code's form), KD, and AT + KD. Each trains 200 epochs on the
whole training split and reports the final test accuracy, as the paper did; β is the paper's, so
nothing is chosen. Published test error (%): student 8.77, AT 7.93, KD 7.41, AT + KD 7.51. The
claims and their verdicts are configs/studies/attention_transfer.py's, judged here on the
paper's own data and scale.
"""

from configs.studies import attention_transfer
from configs.studies.attention_transfer import METRICS  # pylint: disable=unused-import

SEEDS = attention_transfer.SEEDS
STUDENT = 'configs/cifar10_at.py'
TEACHER = {'config.teacher.workdir': '{workdir}/teacher/seed_{seed}'}
ARMS = {
    'teacher': {'config': 'configs/cifar10_wrn.py', 'config.model.widen_factor': 2},
    'none': {'config': STUDENT, 'config.transfer.method': 'none'},
    'at': {'config': STUDENT, **TEACHER, 'config.transfer.method': 'at'},
    'kd': {'config': STUDENT, **TEACHER, 'config.transfer.method': 'kd'},
    'at_kd': {'config': STUDENT, **TEACHER, 'config.transfer.method': 'at_kd'},
}
COMPARISONS = tuple(comparison for comparison in attention_transfer.COMPARISONS
                    if comparison[0] in ARMS and comparison[1] in ARMS)


def get_hyper(h):
  """Every teacher first, then every student (each from its seed's teacher)."""
  return h.product([h.sweep('arm', list(ARMS)), h.sweep('config.seed', SEEDS)])
