"""Study: does RAM's learned policy beat fixed and random glimpses on the cluttered canvases?

Command:
  python -m lpta.study --config=configs/studies/ram_cluttered.py

The arms of configs/studies/glimpse_arms.py on configs/cluttered_fashion_mnist_ram.py's canvases,
seeds 0, 1, 2 each. Claims (RAM, Mnih et al. 2014, Table 2): the learned policy beats each
control by more than two standard errors of the difference and at least 1.5 points.
"""

from configs.studies import glimpse_arms
from configs.studies.glimpse_arms import METRICS, get_hyper  # pylint: disable=unused-import

ARMS = glimpse_arms.arms('cluttered')
COMPARISONS = glimpse_arms.comparisons('RAM Table 2, cluttered')
