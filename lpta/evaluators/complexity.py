"""How concentrated a run's maps are: sparseness (Gini index) and complexity (entropy).

  python -m lpta.evaluate --workdir=W --eval=complexity \
      [--eval.maps="('attention','gradcam','integrated_gradients')"]

For each map kind of `maps` (lpta.maps; every map is non-negative, its maximum 1), per example,
with the map's n = H·W values a_i:
  gini: the Gini index of Chalasani, Chen, Chowdhury, Wu & Jha, "Concise Explanations of Neural
    Networks using Adversarial Training", ICML 2020: with the values sorted ascending,
    a_(1) ≤ ... ≤ a_(n), G = Σ_i (2i − n − 1) a_(i) / (n Σ_i a_i); 0 for a constant map, (n − 1)/n
    for one non-zero pixel. Higher is sparser.
  entropy: the complexity of Bhatt, Weller & Moura, "Evaluating and Aggregating Feature-based
    Model Explanations", IJCAI 2020: H = −Σ_i p_i log p_i (nats) of the fractional contributions
    p_i = a_i / Σ_j a_j; log n for a constant map, 0 for one non-zero pixel. Lower is simpler.
An all-zero map counts as a constant one (Gini 0, entropy log n): it singles out nothing.

Results (means over the examples): `gini_<kind>` and `entropy_<kind>` for each kind, and
`max_entropy`, log n. Files: per_example.csv (example, label, each score), complexity.png.
"""

import numpy as np

from lpta import evaluators
from lpta import runs

METRICS = ('gini', 'entropy')


def gini(maps: np.ndarray) -> np.ndarray:
  """float [N]: the Gini index of each map [N, H, W] of non-negative values (module docstring)."""
  values = np.sort(maps.reshape(len(maps), -1).astype(np.float64), axis=1)
  count = values.shape[1]
  totals = values.sum(axis=1)
  weights = 2 * np.arange(1, count + 1) - count - 1
  return np.where(totals > 0, (values * weights).sum(axis=1) / (count * np.where(
      totals > 0, totals, 1.)), 0.)


def entropy(maps: np.ndarray) -> np.ndarray:
  """float [N]: the entropy (nats) of each map's [N, H, W] fractional contributions (module
  docstring); log(H·W) for an all-zero map."""
  values = maps.reshape(len(maps), -1).astype(np.float64)
  totals = values.sum(axis=1, keepdims=True)
  fractions = np.where(totals > 0, values / np.where(totals > 0, totals, 1.),
                       1. / values.shape[1])
  logs = np.log(np.where(fractions > 0, fractions, 1.))
  return -(fractions * logs).sum(axis=1)


@evaluators.register
class Complexity(evaluators.Evaluator):
  """The Gini index and the entropy of each map kind (module docstring)."""
  name = 'complexity'

  fields = evaluators.Evaluator.fields + evaluators.MAP_FIELDS

  def evaluate(self, run: runs.Run, output: evaluators.Output) -> dict[str, float]:
    config = self.config
    examples = evaluators.examples(run, config)
    scores = {}
    for kind in config.maps:
      kind_maps = evaluators.compute_maps(run, evaluators.map_function(run, kind, config),
                                          examples, config)
      scores.update({f'gini_{kind}': gini(kind_maps), f'entropy_{kind}': entropy(kind_maps)})
    results = {name: float(values.mean()) for name, values in scores.items()}
    results['max_entropy'] = float(np.log(run.image_shape[0] * run.image_shape[1]))
    output.write_csv('per_example.csv', {'example': np.arange(len(examples['label'])),
                                         'label': examples['label'], **scores})
    output.save_figure(_figure(results, config.maps), 'complexity.png')
    return results


def _figure(results, kinds):
  """Two panels: the mean Gini index and the mean entropy of each kind."""
  from matplotlib import figure as mpl_figure  # pylint: disable=g-import-not-at-top
  figure = mpl_figure.Figure(figsize=(2 + 1.2 * len(kinds), 3.2))
  axes = figure.subplots(1, 2)
  for axis, metric, title in zip(axes, METRICS, ('Gini index (higher: sparser)',
                                                 'entropy, nats (lower: simpler)')):
    axis.bar(range(len(kinds)), [results[f'{metric}_{kind}'] for kind in kinds])
    axis.set_xticks(range(len(kinds)), kinds, rotation=30, ha='right')
    axis.set_title(title, fontsize=9)
  axes[0].set_ylim(0, 1)
  axes[1].axhline(results['max_entropy'], color='grey', linestyle='--', linewidth=1)
  return figure
