"""Study: the fine-grained glimpse model at CPU scale on the cluttered canvases, over seeds.

Command:
  python -m lpta.study --config=configs/studies/fine_grained_cluttered.py

The arms of configs/studies/fine_grained_arms.py: per seed 0, 1, 2, the trunk's pretraining and
the glimpse model on that trunk (configs/canvas_fine_grained.py:cluttered,...).
"""

from configs.studies import fine_grained_arms
from configs.studies.fine_grained_arms import METRICS, get_hyper  # pylint: disable=unused-import

ARMS = fine_grained_arms.arms('cluttered')
