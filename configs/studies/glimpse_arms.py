"""The arms of the glimpse studies (configs/studies/ram_translated.py, ram_cluttered.py). Not a
study itself.

On one canvas task, every arm trains the same epochs with the same recipe but for what it tests:
  learned: RAM with the policy of the task's config (the shipped recipe);
  reinforce_0: the same, REINFORCE weighted 0: the policy never moves from its initialisation
    (with the shipped zero initialisation, the centre ± σ);
  centre: every glimpse at the canvas centre (± σ when sampling), no policy;
  random: every glimpse uniformly random (RAM's "random glimpses");
  cnn: lpta's convolutional whole-image baseline (configs/canvas_baseline.py);
  oracle: every glimpse at the item's centre (from its box; ± σ when sampling): the upper bound
    of where to look, which no claim is tested against.
"""

SEEDS = (0, 1, 2)
METRICS = ('test_accuracy', 'test_sampled_accuracy', *(f'test_glimpse_distance_{t}'
                                                       for t in range(1, 7)),
           'test_centre_distance', 'test_random_location_distance', 'test_saturated_means',
           'test_location_spread')


def arms(task: str) -> dict[str, dict]:
  """{arm: {'config': ..., overrides}} on the 'translated' or 'cluttered' canvases."""
  ram = f'configs/{task}_fashion_mnist_ram.py'
  return {
      'learned': {'config': ram},
      'reinforce_0': {'config': ram, 'config.model.reinforce_weight': 0.},
      'centre': {'config': ram, 'config.model.policy': 'centre'},
      'random': {'config': ram, 'config.model.policy': 'random'},
      'cnn': {'config': f'configs/canvas_baseline.py:{task},cnn'},
      'oracle': {'config': ram, 'config.model.policy': 'oracle'},
  }


def get_hyper(h):
  """Every arm × every seed (the arms' names are the same on both tasks)."""
  return h.product([h.sweep('arm', list(arms('translated'))), h.sweep('config.seed', SEEDS)])


def comparisons(claim: str) -> tuple[tuple, ...]:
  """The claims of RAM's Table 2 that these arms test, on test accuracy with mean locations; the
  learned policy must lead by 1.5 points at least."""
  return tuple((learned, control, 'test_accuracy', claim, 0.015) for learned, control in (
      ('learned', 'reinforce_0'), ('learned', 'centre'), ('learned', 'random'),
      ('learned', 'cnn')))
