"""Study: do the attention network's global descriptors transfer better to data it never saw
(Learn To Pay Attention, claim 4)?

Command:
  python -m lpta.study --config=configs/studies/ltpa_cross_domain.py

Reads the runs of ltpa_classification.py: a linear probe (scikit-learn logistic regression) of
each network's frozen descriptors on the digits (lpta/evaluators/probe.py), against the same
probe on pixels, mean ± sd over seeds 0, 1, 2; the table is results_ltpa_cross_domain.* in that
study's folder. Claim (Jetley et al. 2018, Table 3: descriptors of CIFAR networks on six other
data sets): the attention networks' descriptors beat the VGG's.
"""

from configs.studies.ltpa_classification import ARMS, get_hyper  # pylint: disable=unused-import

SHARES_RUNS_WITH = 'ltpa_classification'
METRICS = ('probe_digits/probe_accuracy', 'probe_digits/pixel_probe_accuracy',
           'probe_digits/descriptor_size')
COMPARISONS = (
    ('att3', 'vgg', 'probe_digits/probe_accuracy', 'LTPA Table 3: attention descriptors '
     'transfer better'),
    ('att2', 'vgg', 'probe_digits/probe_accuracy', 'LTPA Table 3: attention descriptors '
     'transfer better'),
)

