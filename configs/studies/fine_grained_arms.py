"""The arms of the fine-grained glimpse studies (configs/studies/fine_grained_translated.py,
fine_grained_cluttered.py). Not a study itself.

  trunk: the trunk's pretraining (configs/canvas_fine_grained.py:TASK,trunk), one per seed;
  glimpse: the glimpse model on the trunk of the same seed (TASK,glimpse).
The rows of the glimpse table; no paper claim is tested at this scale.
"""

from configs.studies import glimpse_arms

SEEDS = glimpse_arms.SEEDS
METRICS = ('test_accuracy', 'test_sampled_accuracy')


def arms(task: str) -> dict[str, dict]:
  """{arm: {'config': ..., overrides}} on the 'translated' or 'cluttered' canvases."""
  config = f'configs/canvas_fine_grained.py:{task}'
  return {'trunk': {'config': f'{config},trunk'},
          'glimpse': {'config': f'{config},glimpse',
                      'config.init_from.workdir': '{workdir}/trunk/seed_{seed}'}}


def get_hyper(h):
  """Every trunk, then every glimpse model (which starts from its seed's trunk)."""
  return h.product([h.sweep('arm', list(arms('translated'))), h.sweep('config.seed', SEEDS)])
