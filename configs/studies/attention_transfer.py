"""Study: does attention transfer make a better student, alone and with KD (Zagoruyko &
Komodakis 2017, Table 1)?

Command:
  python -m lpta.study --config=configs/studies/attention_transfer.py

Per seed 0, 1, 2: a WRN-16-2 teacher (configs/fashion_mnist_wrn.py), then WRN-16-1 students
(configs/fashion_mnist_at.py's recipe) from the teacher of the same seed, trained alone (none),
with activation AT at β = 10, 100 and 1000, KD, AT + KD (β 100) and gradient AT. Every run holds
out the last 3,000 of its 15,000 training images: β is the AT arm with the highest mean
validation accuracy (CHOOSE), never chosen on test. Claims (the paper's Table 1, CIFAR-10
WRN-16-1 ← WRN-16-2 error: student 8.77, AT 7.93, KD 7.41, AT + KD 7.51; RepDistiller's
CIFAR-100 WRN-40-2 → WRN-16-2 shows gains of about a point): AT beats the student alone, AT + KD
beats KD, KD beats the student alone.
"""

SEEDS = (0, 1, 2)
HELD_OUT = {'config.data.validation_split': 3000}
STUDENT = 'configs/fashion_mnist_at.py'
TEACHER = {'config.teacher.workdir': '{workdir}/teacher/seed_{seed}'}
BETAS = (10., 100., 1000.)
ARMS = {
    'teacher': {'config': 'configs/fashion_mnist_wrn.py', **HELD_OUT},
    'none': {'config': STUDENT, **HELD_OUT, 'config.transfer.method': 'none'},
    **{f'at_beta_{beta:g}': {'config': STUDENT, **HELD_OUT, **TEACHER,
                             'config.transfer.method': 'at', 'config.transfer.beta': beta}
       for beta in BETAS},
    'kd': {'config': STUDENT, **HELD_OUT, **TEACHER, 'config.transfer.method': 'kd'},
    'at_kd': {'config': STUDENT, **HELD_OUT, **TEACHER, 'config.transfer.method': 'at_kd',
              'config.transfer.beta': 100.},
    'grad_at': {'config': STUDENT, **HELD_OUT, **TEACHER, 'config.transfer.method': 'grad_at'},
}
CHOOSE = {'at': ('validation_accuracy', tuple(f'at_beta_{beta:g}' for beta in BETAS))}
METRICS = ('test_accuracy', 'validation_accuracy', 'test_loss')
COMPARISONS = (
    ('at', 'none', 'test_accuracy', 'AT Table 1: AT beats the student alone'),
    ('at_kd', 'kd', 'test_accuracy', 'AT Table 1: AT + KD beats KD'),
    ('kd', 'none', 'test_accuracy', 'AT Table 1: KD beats the student alone'),
    ('grad_at', 'none', 'test_accuracy', 'AT §4: gradient AT beats the student alone'),
)


def get_hyper(h):
  """Every teacher first, then every student (each from its seed's teacher)."""
  return h.product([h.sweep('arm', list(ARMS)), h.sweep('config.seed', SEEDS)])
