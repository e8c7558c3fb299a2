"""Do a run's maps depend on what it learned? Model-parameter randomisation.

  python -m lpta.evaluate --workdir=W --eval=parameter_randomisation \
      [--eval.maps="('attention','gradcam','gradient')" --eval.max_examples=200]

Adebayo, Gilmer, Muelly, Goodfellow, Hardt & Kim, "Sanity Checks for Saliency Maps", NeurIPS
2018, §3. The layers are the modules of the network that hold a 'kernel' (convolutions, dense
layers, the attention estimators' projections), in the order a forward pass calls them: the top
layer is the last one called. A layer is randomised by
giving it (kernel, bias and any other parameter of that module) the values that a fresh
initialisation of the network with `seed` gives it; every other parameter and the batch
statistics keep their trained values.
  cascading, k = 1..L: the top k layers randomised (from the top down, as in the paper's Fig. 2);
  independent, k = 1..L: the k-th layer from the top alone randomised.
Each map kind of `maps` (lpta.maps) of each randomised network is compared, per example, with the
same kind of map of the trained network (maps m' and m [H, W]):
  spearman: Spearman rank correlation of m and m' over the pixels (ties take their mean rank);
    lpta's maps are non-negative (lpta.maps), so it is also the paper's absolute-value variant;
  ssim: structural similarity (Wang et al. 2004; scikit-image's structural_similarity, 7×7
    windows, data range 1) of m and m', each min-max scaled to [0, 1];
  hog: Pearson correlation of the HOG features (Dalal & Triggs 2005; scikit-image's hog, 9
    orientations, cells of `hog_cell` pixels, blocks of 2 × 2 cells) of the scaled maps.
A constant map has no ranks and no gradients: its correlations with any map are 0 (no similarity).
A map that still resembles the trained network's when every layer is randomised does not read
the weights: the report flags it (`insensitive_<kind>` = 1 when the mean spearman of the fully
randomised network is above `insensitive_above`). The maps explain the label of each example
(`target`, default 'label'), so that the trained and the randomised network explain one class.

Results (means over the examples): `<mode>_<k>_<metric>_<kind>` for each mode of `modes`
(cascading, independent), k (1 for the top layer, 2 digits), metric and kind; `randomised_<metric>_<kind>`,
the cascade with every layer randomised, and `insensitive_<kind>` (0 or 1), when `modes` holds
the cascade; `layers`, L. Files:
similarity.png (each metric against k, per mode and kind), similarity.csv (mode, k, layer, kind,
metric, mean, sd) and, with the cascade, maps.png (the first examples' maps along it).
"""

from collections.abc import Mapping, Sequence
from typing import Any

from absl import logging
import flax.linen as nn
import flax.traverse_util
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import scipy.stats

from lpta import config_fields as cf
from lpta import evaluators
from lpta import maps as maps_lib
from lpta import runs
from lpta.errors import ConfigError

MODES = ('cascading', 'independent')
METRICS = ('spearman', 'ssim', 'hog')
Path = tuple[str, ...]
_FIGURE_EXAMPLES = 3
_FIGURE_COLUMNS = 8  # of maps.png: the trained map and up to 7 steps of the cascade


def kernel_layers(params: Mapping[str, Any]) -> list[Path]:
  """The paths of the modules of `params` (a nested dict) that hold a 'kernel'."""
  paths = []

  def visit(tree, path):
    if 'kernel' in tree:
      paths.append(path)
    for name, value in tree.items():
      if isinstance(value, Mapping):
        visit(value, (*path, name))

  visit(params, ())
  return paths


def forward_order(run: runs.Run, layers: Sequence[Path]) -> list[Path]:
  """`layers` in the order the network calls them on an image (the order in which their calls
  begin, seen by flax.linen.intercept_methods; only shapes are computed). Layers the forward
  pass does not call come last, in the given order."""
  called = []

  def record(next_function, args, kwargs, context):
    if context.method_name == '__call__' and context.module.path not in called:
      called.append(context.module.path)
    return next_function(*args, **kwargs)

  with nn.intercept_methods(record):
    jax.eval_shape(lambda: run.apply(run.arrays, jnp.zeros((1, *run.image_shape))))
  rank = {path: index for index, path in enumerate(called)}
  return sorted(layers, key=lambda layer: rank.get(tuple(layer), len(rank)))


def with_layers_from(params: Mapping[str, Any], fresh: Mapping[str, Any],
                     layers: Sequence[Path]) -> dict[str, Any]:
  """`params` with every parameter under the module paths `layers` taken from `fresh` (a tree of
  the same structure)."""
  flat, fresh_flat = flax.traverse_util.flatten_dict(params), flax.traverse_util.flatten_dict(fresh)
  chosen = {key: fresh_flat[key] if any(key[:len(layer)] == layer for layer in layers) else value
            for key, value in flat.items()}
  return flax.traverse_util.unflatten_dict(chosen)


def randomisations(layers: Sequence[Path]) -> list[tuple[str, int, list[Path]]]:
  """(mode, k, the layers randomised) for k = 1..L of each mode, the top layer (the last of
  `layers`) first."""
  top_down = list(reversed(layers))
  return ([('cascading', k, top_down[:k]) for k in range(1, len(top_down) + 1)]
          + [('independent', k, [top_down[k - 1]]) for k in range(1, len(top_down) + 1)])


def spearman(maps: np.ndarray, others: np.ndarray) -> np.ndarray:
  """float [N]: the Spearman rank correlation of maps [N, H, W] and others [N, H, W] per example
  (mean ranks for ties); 0 where either map is constant."""
  ranks = [scipy.stats.rankdata(m.reshape(len(m), -1), axis=1) for m in (maps, others)]
  return pearson(*ranks)


def pearson(first: np.ndarray, second: np.ndarray) -> np.ndarray:
  """float [N]: the Pearson correlation of the rows of first [N, D] and second [N, D]; 0 where
  either row is constant."""
  first, second = (x - x.mean(axis=1, keepdims=True) for x in (first, second))
  norms = np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1)
  products = (first * second).sum(axis=1)
  return np.where(norms > 0, products / np.where(norms > 0, norms, 1.), 0.)


def min_max_scaled(maps: np.ndarray) -> np.ndarray:
  """maps [N, H, W] each scaled to [0, 1] (a constant map becomes 0): lpta.maps.min_max_scaled."""
  return np.asarray(maps_lib.min_max_scaled(jnp.asarray(maps)[..., None]))[..., 0]


def ssim(maps: np.ndarray, others: np.ndarray) -> np.ndarray:
  """float [N]: SSIM of each pair of min-max scaled maps [N, H, W] (7×7 windows, or the largest
  odd window that fits)."""
  from skimage import metrics  # pylint: disable=g-import-not-at-top
  size = min(7, *(side - 1 + side % 2 for side in maps.shape[1:]))
  return np.array([metrics.structural_similarity(m, o, data_range=1., win_size=size)
                   for m, o in zip(min_max_scaled(maps), min_max_scaled(others))])


def hog_similarity(maps: np.ndarray, others: np.ndarray, cell: int) -> np.ndarray:
  """float [N]: the Pearson correlation of the HOG features of each pair of min-max scaled maps
  [N, H, W] (9 orientations, `cell` × `cell` pixel cells, 2 × 2 cell blocks)."""
  from skimage import feature  # pylint: disable=g-import-not-at-top

  def features(batch):
    return np.stack([feature.hog(m, orientations=9, pixels_per_cell=(cell, cell),
                                 cells_per_block=(2, 2)) for m in min_max_scaled(batch)])

  return pearson(features(maps), features(others))


def similarities(maps: np.ndarray, others: np.ndarray, hog_cell: int) -> dict[str, np.ndarray]:
  """{metric: float [N]} of METRICS between maps [N, H, W] and others [N, H, W]."""
  maps, others = np.asarray(maps, np.float64), np.asarray(others, np.float64)
  return {'spearman': spearman(maps, others),
          'ssim': ssim(maps, others),
          'hog': hog_similarity(maps, others, hog_cell)}


def fresh_params(run: runs.Run, seed: int) -> dict[str, Any]:
  """The parameters of a fresh initialisation of the run's network, placed as the run's own. Its
  key, fold_in(key(seed), 1), is not the key(seed) a run of that seed may have started from, so
  that a layer that training hardly moved still changes."""
  key = jax.random.fold_in(jax.random.key(seed), 1)
  params = run.model.init({'params': key, **run.family.rngs(key)},
                          jnp.zeros((1, *run.image_shape)), train=False)['params']
  placement = jax.tree.leaves(run.variables['params'])[0].sharding
  return jax.device_put(params, placement)


@evaluators.register
class ParameterRandomisation(evaluators.Evaluator):
  """The module docstring's cascading and independent randomisation of each map kind."""
  name = 'parameter_randomisation'

  fields = cf.with_defaults(evaluators.Evaluator.fields, max_examples=200) + (
      cf.with_defaults(evaluators.MAP_FIELDS, target='label') + (
          cf.Field('hog_cell', 4, 'The side of a HOG cell, in map pixels (a map needs at least '
                   '2 cells a side).', cf.POSITIVE_INTEGER, hint='(pixels)'),
          cf.Field('modes', MODES, f'The randomisations to run, among {", ".join(MODES)}.',
                   cf.Check(f'must be distinct modes of {", ".join(MODES)}', lambda modes: (
                       isinstance(modes, tuple) and 0 < len(set(modes)) == len(modes)
                       and set(modes) <= set(MODES)))),
          cf.Field('insensitive_above', .5, 'Flag a map kind whose mean spearman with the '
                   'fully randomised network is above this.', cf.number(-1, 1)),
      ))

  def evaluate(self, run: runs.Run, output: evaluators.Output) -> dict[str, float]:
    config = self.config
    height, width = run.image_shape[:2]
    if min(height, width) < 2 * config.hog_cell:
      raise ConfigError(f'--eval.hog_cell={config.hog_cell} leaves fewer than 2 HOG cells on '
                        f'the {height}×{width} maps; use at most {min(height, width) // 2}.')
    fresh = fresh_params(run, config.seed)
    layers = forward_order(run, kernel_layers(fresh))
    if not layers:
      raise ConfigError(f'{run.description()} has no layer with a kernel to randomise.')
    examples = evaluators.examples(run, config)
    compute = {kind: evaluators.map_function(run, kind, config) for kind in config.maps}

    def all_maps(params):
      variables = {**run.variables, 'params': params}
      arrays = {**run.arrays, 'variables': variables}
      return {kind: evaluators.compute_maps(run, function, examples, config, arrays)
              for kind, function in compute.items()}

    trained = all_maps(run.variables['params'])
    rows, results, cascade = [], {}, []
    steps = [step for step in randomisations(layers) if step[0] in config.modes]
    for index, (mode, k, randomised) in enumerate(steps):
      logging.info('parameter_randomisation: %s %d of %d (%s), %d of %d', mode, k, len(layers),
                   '/'.join(randomised[-1]), index + 1, len(steps))
      randomised_maps = all_maps(with_layers_from(run.variables['params'], fresh, randomised))
      if mode == 'cascading':
        cascade.append(randomised_maps)
      for kind in config.maps:
        values = similarities(trained[kind], randomised_maps[kind], config.hog_cell)
        for metric, per_example in values.items():
          results[f'{mode}_{k:02d}_{metric}_{kind}'] = float(per_example.mean())
          rows.append({'mode': mode, 'k': k, 'layer': '/'.join(randomised[-1]), 'kind': kind,
                       'metric': metric, 'mean': float(per_example.mean()),
                       'sd': float(per_example.std())})
    results['layers'] = float(len(layers))
    output.write_csv('similarity.csv', {name: [row[name] for row in rows] for name in rows[0]})
    output.save_figure(_similarity_figure(rows, config.maps, len(layers)), 'similarity.png')
    if cascade:
      results.update(self._flags(results, len(layers), run.workdir))
      output.save_figure(_maps_figure(examples['image'], trained, cascade, layers, config.maps),
                         'maps.png')
    return results

  def _flags(self, results: dict[str, float], num_layers: int, workdir: str) -> dict[str, float]:
    """randomised_<metric>_<kind> (the full cascade) and insensitive_<kind> of each kind."""
    flags = {}
    for kind in self.config.maps:
      for metric in METRICS:
        flags[f'randomised_{metric}_{kind}'] = results[
            f'cascading_{num_layers:02d}_{metric}_{kind}']
      flags[f'insensitive_{kind}'] = float(
          flags[f'randomised_spearman_{kind}'] > self.config.insensitive_above)
      if flags[f'insensitive_{kind}']:
        logging.warning('parameter_randomisation: %s maps of %s hardly change when every layer '
                        'is randomised (mean rank correlation %.2f): they do not read the '
                        'weights.', kind, workdir, flags[f'randomised_spearman_{kind}'])
    return flags


def _similarity_figure(rows, kinds, num_layers):
  """One panel per metric and mode: the mean similarity of each kind against k."""
  from matplotlib import figure as mpl_figure  # pylint: disable=g-import-not-at-top
  figure = mpl_figure.Figure(figsize=(3.2 * len(METRICS), 5.6))  # at most 2 rows
  modes = list(dict.fromkeys(row['mode'] for row in rows))
  axes = figure.subplots(len(modes), len(METRICS), sharex=True, sharey=True, squeeze=False)
  for row_index, mode in enumerate(modes):
    for column, metric in enumerate(METRICS):
      axis = axes[row_index, column]
      for kind in kinds:
        points = [(row['k'], row['mean']) for row in rows
                  if (row['mode'], row['metric'], row['kind']) == (mode, metric, kind)]
        axis.plot(*zip(*points), marker='o', label=kind)
      axis.axhline(0, color='grey', linewidth=.5)
      axis.set_ylim(-1.05, 1.05)
      axis.set_xticks(range(1, num_layers + 1, max(1, num_layers // 8)))
      axis.set_title(f'{mode}: {metric}')
      if row_index == len(modes) - 1:
        axis.set_xlabel('layers randomised from the top' if mode == 'cascading'
                        else 'layer randomised (1: top)')
  axes[0, 0].legend()
  return figure


def _maps_figure(images, trained, cascade, layers, kinds):
  """For the first examples, per kind: the trained map, then maps along the cascade."""
  from matplotlib import figure as mpl_figure  # pylint: disable=g-import-not-at-top
  count = min(_FIGURE_EXAMPLES, len(images))
  steps = np.unique(np.linspace(0, len(cascade) - 1, _FIGURE_COLUMNS - 1).round().astype(int))
  rows = [(example, kind) for example in range(count) for kind in kinds]
  figure = mpl_figure.Figure(figsize=(1.6 * (len(steps) + 2), 1.6 * len(rows)))
  axes = figure.subplots(len(rows), len(steps) + 2, squeeze=False)
  top_down = list(reversed(layers))
  for row, (example, kind) in enumerate(rows):
    image = images[example]
    axes[row, 0].imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap='gray')
    panels = [('trained', trained[kind][example])] + [
        (f'to {"/".join(top_down[step][-2:])}', cascade[step][kind][example]) for step in steps]
    for column, (title, saliency) in enumerate(panels, start=1):
      axes[row, column].imshow(min_max_scaled(np.asarray(saliency)[None])[0], cmap='jet',
                               vmin=0, vmax=1)
      if row == 0:
        axes[row, column].set_title(title, fontsize=7)
    axes[row, 0].set_ylabel(kind, fontsize=7)
    for axis in axes[row]:
      axis.set_xticks([])
      axis.set_yticks([])
  return figure
