"""One report for every map of a run: localisation, faithfulness, complexity and randomisation.

  python -m lpta.evaluate --workdir=W --eval=explanations \
      [--eval.maps="('attention','gradcam','integrated_gradients')" --eval.max_examples=200]

Every map kind of `maps` (default: every kind of lpta.maps the run has: a VGG without attention
has no 'attention') is scored on the same first `max_examples` examples of `split` by the
evaluators of SCORES, each with its own defaults and the map fields given here (the target
class, the settings of the pixel attributions):
  localisation: pointing, energy in the box, box accuracy, Jaccard (and the centre baseline);
  deletion_insertion: the RISE deletion and insertion AUCs (and a random order);
  faithfulness_correlation: Bhatt et al.'s correlation (and uniform random maps);
  complexity: the Gini index and the entropy;
  parameter_randomisation: the cascade only, on the first `randomisation_examples` examples
    (every randomised network recomputes every map).
Each writes its own files under eval/<its name>/ as when run alone. Results: every result of
each, as '<evaluator>/<result>'. Files: explanations.png, the maps of the first
`figure_examples` examples side by side above a table of each kind's headline scores.
"""

import jax
import jax.numpy as jnp
import numpy as np

from lpta import config_fields as cf
from lpta import evaluators
from lpta import maps
from lpta import runs
from lpta.errors import LptaError

SCORES = ('localisation', 'deletion_insertion', 'faithfulness_correlation', 'complexity',
          'parameter_randomisation')
# The table of explanations.png: (column title, '<evaluator>/<result>' with {kind}).
HEADLINES = (
    ('pointing', 'localisation/pointing_{kind}'),
    ('energy', 'localisation/energy_{kind}'),
    ('Jaccard', 'localisation/jaccard_{kind}'),
    ('deletion ↓', 'deletion_insertion/deletion_auc_{kind}'),
    ('insertion ↑', 'deletion_insertion/insertion_auc_{kind}'),
    ('faithf. corr.', 'faithfulness_correlation/faithfulness_correlation_{kind}'),
    ('Gini', 'complexity/gini_{kind}'),
    ('entropy', 'complexity/entropy_{kind}'),
    ('rand. Spearman', 'parameter_randomisation/randomised_spearman_{kind}'),
)
_MAPS_FIELD = next(field for field in evaluators.MAP_FIELDS if field.name == 'maps')


def kinds_of(run: runs.Run, config) -> tuple[str, ...]:
  """The kinds of lpta.maps.KINDS that the run has (each traced once on one image)."""
  pixels = jax.ShapeDtypeStruct((1, *run.image_shape), jnp.float32)
  labels = jax.ShapeDtypeStruct((1,), jnp.int32)
  kinds = []
  for kind in maps.KINDS:
    try:
      jax.eval_shape(evaluators.map_function(run, kind, config), run.arrays, pixels, labels,
                     jax.random.key(0))
    except LptaError:
      continue
    kinds.append(kind)
  return tuple(kinds)


@evaluators.register
class Explanations(evaluators.Evaluator):
  """The module docstring's report."""
  name = 'explanations'

  fields = cf.with_defaults(evaluators.Evaluator.fields, max_examples=200) + tuple(
      field for field in evaluators.MAP_FIELDS if field.name != 'maps') + (
          cf.Field('maps', None, 'The map kinds to score, distinct, among '
                   f'{", ".join(maps.KINDS)}; None: every kind the run has.',
                   cf.Check(_MAPS_FIELD.check.refusal,
                            lambda kinds: kinds is None or _MAPS_FIELD.check.accepts(kinds)),
                   hint=_MAPS_FIELD.hint, kind=tuple),
          cf.Field('randomisation_examples', 16, 'Examples of the parameter randomisation (the '
                   'first of the others).', cf.POSITIVE_INTEGER),
          cf.Field('figure_examples', 4, 'Examples whose maps explanations.png shows.',
                   cf.POSITIVE_INTEGER),
      )

  def evaluate(self, run: runs.Run, output: evaluators.Output) -> dict[str, float]:
    config = self.config
    kinds = tuple(config.maps) if config.maps is not None else kinds_of(run, config)
    results = {}
    for name in SCORES:
      sub_config = self._sub_config(name, kinds)
      scores = evaluators.evaluate_run(run, name, sub_config)
      results.update({f'{name}/{key}': value for key, value in scores.items()})
    examples = evaluators.examples(run, self._figure_config())
    figure_maps = {kind: evaluators.compute_maps(run, evaluators.map_function(run, kind, config),
                                                 examples, config) for kind in kinds}
    output.save_figure(_figure(examples['image'], figure_maps, results), 'explanations.png')
    return results

  def _figure_config(self):
    """This config, reading only the first `figure_examples` examples."""
    config = self.config.copy_and_resolve_references()
    config.max_examples = config.figure_examples
    return config

  def _sub_config(self, name: str, kinds: tuple[str, ...]):
    """The config of evaluator `name`: its defaults, with the fields it shares with this one."""
    config = evaluators.get_class(name).default_config()
    shared = {field: self.config[field] for field in config if field in self.config
              and field not in ('maps', 'max_examples')}
    config.update(shared, maps=kinds, max_examples=self.config.max_examples)
    if name == 'parameter_randomisation':
      config.update(modes=('cascading',), max_examples=min(self.config.randomisation_examples,
                                                           self.config.max_examples))
    return config


def _figure(images, figure_maps, results):
  """The maps of each example (rows) and kind (columns), then the table of HEADLINES."""
  from matplotlib import figure as mpl_figure  # pylint: disable=g-import-not-at-top
  kinds = list(figure_maps)
  count = len(images)
  figure = mpl_figure.Figure(figsize=(max(1.5 * (len(kinds) + 1), 11), 1.5 * count
                                      + .35 * len(kinds) + 1))
  grid = figure.add_gridspec(count + 1, len(kinds) + 1,
                             height_ratios=[1.] * count + [.25 * len(kinds) + .5])
  for row in range(count):
    image = images[row].squeeze(-1) if images.shape[-1] == 1 else images[row]
    for column, kind in enumerate(['image', *kinds]):
      axis = figure.add_subplot(grid[row, column])
      axis.imshow(image, cmap='gray')
      if kind != 'image':
        axis.imshow(figure_maps[kind][row], cmap='jet', alpha=.5, vmin=0, vmax=1)
      axis.set_axis_off()
      if row == 0:
        axis.set_title(kind, fontsize=8)
  table_axis = figure.add_subplot(grid[count, :])
  table_axis.set_axis_off()
  cells = [[_cell(results.get(key.format(kind=kind))) for _, key in HEADLINES] for kind in kinds]
  table = table_axis.table(cellText=cells, rowLabels=kinds,
                           colLabels=[title for title, _ in HEADLINES], loc='center')
  table.auto_set_font_size(False)
  table.set_fontsize(7)
  return figure


def _cell(value) -> str:
  return '—' if value is None or not np.isfinite(value) else f'{value:.3f}'
