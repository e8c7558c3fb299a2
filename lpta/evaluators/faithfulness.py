"""Whether a run's maps show what its decision rests on: deletion and insertion (RISE protocol),
and faithfulness correlation (FaithfulnessCorrelation's docstring).

  python -m lpta.evaluate --workdir=W --eval=deletion_insertion \
      [--eval.maps="('attention','gradcam')" --eval.steps=28 --eval.blur_sigma=2]
  python -m lpta.evaluate --workdir=W --eval=faithfulness_correlation [--eval.subsets=100]

Petsiuk, Das & Saenko, "RISE: Randomized Input Sampling for Explanation of Black-box Models",
BMVC 2018. For each map kind of `maps` (lpta.maps: 'attention', 'activation', 'gradcam') and for
a random order, per example with pixels x [H, W, C] in [0, 1]:
  order: the H·W pixels (all channels of a pixel together) ranked by the map, most important
    first; equal map values keep the example's random order (a permutation drawn from
    `seed` and the example's index in the split), so a constant map scores exactly as the random
    order, which is that permutation itself.
  score: p_c(x') = softmax(logits(x'))_c, with c = argmax logits(x) the class the model predicts
    on the clean image.
  deletion curve: D_s = p_c(x with its first k_s pixels set to `deletion_value`),
  insertion curve: I_s = p_c(blur(x) with its first k_s pixels put back from x),
    for s = 0..steps, k_s = ⌊s·H·W / steps⌋ pixels, plotted at the fraction s / steps.
  AUC: trapezoidal area over the fraction axis [0, 1], (1/steps) Σ_s (C_s + C_{s+1}) / 2.
A faithful map names the pixels the decision rests on first, so deleting them makes the
probability fall at once (LOWER deletion AUC is better) and inserting them makes it rise at once
(HIGHER insertion AUC is better); the random order is the baseline either should beat.
blur(x) is a separable Gaussian blur of standard deviation `blur_sigma` pixels, truncated at
⌊3σ + ½⌋ pixels, with symmetric padding (the edge pixel repeated, d c b a | a b c d | d c b a:
scipy.ndimage's 'reflect' mode), so a constant image stays constant and the blur keeps each
channel's total.

Results (means over the examples): `deletion_auc_<kind>` and `insertion_auc_<kind>` for each map
kind and for 'random'. Files: curves.png (the mean curves, AUCs in the legend), curves.csv
(order, curve, fraction, mean_score) and per_example.csv (example, label, each AUC).
"""

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lpta import config_fields as cf
from lpta import evaluators
from lpta import maps
from lpta import runs
from lpta.data import preprocessing
from lpta.errors import ConfigError
from lpta.evaluators import randomisation

RANDOM = 'random'  # the random-order baseline, computed with every map kind
CURVES = ('deletion', 'insertion')

# (arrays, images uint8 [B, H, W, C], labels [B], indices [B]) ->
#   {'deletion': [B, steps + 1], 'insertion': [B, steps + 1]}.
CurveFunction = Callable[..., dict[str, jax.Array]]


def _check_at_most_pixels(run: runs.Run, field: str, value: int) -> None:
  """ConfigError unless `value` (of --eval.<field>) is at most the pixels of the run's images."""
  num_pixels = run.image_shape[0] * run.image_shape[1]
  if value > num_pixels:
    raise ConfigError(f'--eval.{field}={value} exceeds the {num_pixels} pixels of an image; use '
                      f'at most {num_pixels}.')


def pixel_counts(num_pixels: int, steps: int) -> np.ndarray:
  """int [steps + 1]: k_s = ⌊s·num_pixels / steps⌋, the pixels changed after step s."""
  return np.arange(steps + 1) * num_pixels // steps


def fractions(steps: int) -> np.ndarray:
  """float [steps + 1]: s / steps, where the curves are plotted and integrated."""
  return np.arange(steps + 1) / steps


def area_under_curve(curves):
  """[...] trapezoidal area of curves [..., steps + 1] sampled at fractions 0, 1/steps, ..., 1:
  (1/steps) Σ_s (C_s + C_{s+1}) / 2."""
  steps = curves.shape[-1] - 1
  return (curves[..., 1:] + curves[..., :-1]).sum(axis=-1) / (2 * steps)


def gaussian_kernel(sigma: float) -> np.ndarray:
  """float32 [2r + 1], r = ⌊3σ + ½⌋: exp(−t² / 2σ²) for t = −r..r, divided by its sum."""
  radius = int(3 * sigma + .5)
  taps = np.exp(-.5 * (np.arange(-radius, radius + 1) / sigma)**2)
  return (taps / taps.sum()).astype(np.float32)


def gaussian_blur(pixels: jax.Array, sigma: float) -> jax.Array:
  """pixels [B, H, W, C] blurred by a Gaussian of `sigma` pixels: one 1-D kernel along H, then
  along W, each over the symmetrically padded image (module docstring), so every output pixel is
  a convex combination of input pixels of its own channel."""
  kernel = gaussian_kernel(sigma)
  radius = len(kernel) // 2
  for axis in (1, 2):
    size = pixels.shape[axis]
    widths = [(0, 0)] * pixels.ndim
    widths[axis] = (radius, radius)
    padded = jnp.pad(pixels, widths, mode='symmetric')
    pixels = sum(weight * jax.lax.slice_in_dim(padded, tap, tap + size, axis=axis)
                 for tap, weight in enumerate(kernel))
  return pixels


def random_orders(key: jax.Array, indices: jax.Array, num_pixels: int) -> jax.Array:
  """int [B, num_pixels]: for each example index, a permutation of the flat (row-major) pixel
  indices drawn with fold_in(key, index), so an example's order does not depend on its batch."""
  return jax.vmap(lambda index: jax.random.permutation(jax.random.fold_in(key, index),
                                                       num_pixels))(indices)


def ranked_order(maps: jax.Array, tie_orders: jax.Array) -> jax.Array:
  """int [B, H·W]: flat pixel indices by decreasing map value (maps [B, H, W]); pixels of equal
  value come in the order they have in `tie_orders` [B, H·W] (permutations)."""
  values = jnp.take_along_axis(maps.reshape(maps.shape[0], -1), tie_orders, axis=1)
  positions = jnp.argsort(values, axis=1, stable=True, descending=True)
  return jnp.take_along_axis(tie_orders, positions, axis=1)


def score_curves(run: runs.Run, arrays, pixels: jax.Array, order: jax.Array, *, steps: int,
                 blur_sigma: float, deletion_value: float,
                 rng: jax.Array) -> dict[str, jax.Array]:
  """The deletion and insertion curves (module docstring), each [B, steps + 1].

  Args:
    run: the run whose probabilities are scored (run.apply in inference mode).
    arrays: run.arrays.
    pixels: float32 [B, H, W, C] in [0, 1].
    order: int [B, H·W], flat (row-major) pixel indices, the first changed first.
    steps: the curves' increments.
    blur_sigma: the Gaussian blur (pixels) of the insertion start.
    deletion_value: what deleted pixels are set to, in [0, 1].
    rng: the model's rng, the same for every forward pass.
  """
  batch, height, width, _ = pixels.shape
  logits, _ = run.apply(arrays, pixels, rng)
  classes = jnp.argmax(logits, axis=-1)[:, None]
  ranks = jnp.argsort(order, axis=1).reshape(batch, height, width, 1)  # position in `order`
  blurred = gaussian_blur(pixels, blur_sigma)

  def score(images):
    probabilities = jax.nn.softmax(run.apply(arrays, images, rng)[0].astype(jnp.float32))
    return jnp.take_along_axis(probabilities, classes, axis=-1)[:, 0]

  def step(carry, count):
    changed = ranks < count
    deleted = jnp.where(changed, jnp.float32(deletion_value), pixels)
    inserted = jnp.where(changed, pixels, blurred)
    return carry, (score(deleted), score(inserted))

  counts = jnp.asarray(pixel_counts(height * width, steps))
  _, (deletion, insertion) = jax.lax.scan(step, None, counts)
  return {'deletion': deletion.T, 'insertion': insertion.T}


def curve_function(run: runs.Run, order: str, config: ml_collections.ConfigDict) -> CurveFunction:
  """A jitted function (arrays, images, labels, indices) -> {'deletion', 'insertion'} [B,
  steps + 1] for the pixels ranked by the `order` map kind, or in random order for RANDOM.

  Raises:
    LptaError: the run has no maps of that kind (lpta.maps).
  """
  compute_map = None if order == RANDOM else evaluators.map_function(run, order, config)
  key = jax.random.key(config.seed)
  model_rng, order_key = jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)

  def curves(arrays, images, labels, indices):
    pixels = preprocessing.to_unit_range(images)
    height, width = pixels.shape[1:3]
    order_of_pixels = random_orders(order_key, indices, height * width)
    if compute_map is not None:
      order_of_pixels = ranked_order(compute_map(arrays, pixels, labels, model_rng),
                                     order_of_pixels)
    return score_curves(run, arrays, pixels, order_of_pixels, steps=config.steps,
                        blur_sigma=config.blur_sigma, deletion_value=config.deletion_value,
                        rng=model_rng)

  return jax.jit(curves)


@evaluators.register
class DeletionInsertion(evaluators.Evaluator):
  """Deletion and insertion curves and AUCs of each map kind and of a random order (module
  docstring). Lower deletion AUC and higher insertion AUC are better."""
  name = 'deletion_insertion'

  fields = evaluators.Evaluator.fields + evaluators.MAP_FIELDS + (
      cf.Field('steps', 28, 'Equal increments of pixels; each curve has steps + 1 points (at '
               'most the pixels of an image).', cf.POSITIVE_INTEGER),
      cf.Field('blur_sigma', 2., 'The std (pixels) of the Gaussian blur insertion starts from.',
               cf.POSITIVE_NUMBER, hint='(pixels, e.g. 2)'),
      cf.Field('deletion_value', 0., 'The value in [0, 1] deleted pixels take (0: black).',
               cf.number(0, 1)),
  )

  def evaluate(self, run: runs.Run, output: evaluators.Output) -> dict[str, float]:
    config = self.config
    _check_at_most_pixels(run, 'steps', config.steps)
    orders = (*config.maps, RANDOM)
    functions = {order: curve_function(run, order, config) for order in orders}
    examples = evaluators.examples(run, config)
    labels = examples['label']
    curves = _all_curves(run, functions, {'image': examples['image'], 'label': labels,
                                          'index': np.arange(len(labels))}, config.batch_size)
    aucs = {f'{curve}_auc_{order}': area_under_curve(curves[order][curve])
            for order in orders for curve in CURVES}
    mean_curves = {order: {curve: values.mean(axis=0) for curve, values in by_curve.items()}
                   for order, by_curve in curves.items()}
    results = {name: float(values.mean()) for name, values in aucs.items()}
    output.save_figure(_curves_figure(mean_curves, results), 'curves.png')
    output.write_csv('curves.csv', _curve_rows(mean_curves))
    output.write_csv('per_example.csv', {'example': np.arange(len(labels)), 'label': labels,
                                         **aucs})
    return results


def _all_curves(run: runs.Run, functions: dict[str, CurveFunction],
                arrays: dict[str, np.ndarray], batch_size: int) -> dict[str, dict[str, np.ndarray]]:
  """{order: {curve: float [N, steps + 1]}} over the real (unpadded) examples."""
  return evaluators.batched(
      lambda batch, _: {order: function(run.arrays, batch['image'], batch['label'],
                                        batch['index'])
                        for order, function in functions.items()}, arrays, batch_size)


def _curve_rows(mean_curves: dict[str, dict[str, np.ndarray]]) -> dict[str, Sequence]:
  """Columns order, curve, fraction, mean_score: one row per point of every mean curve."""
  columns = {'order': [], 'curve': [], 'fraction': [], 'mean_score': []}
  for order, by_curve in mean_curves.items():
    for curve, values in by_curve.items():
      columns['order'] += [order] * len(values)
      columns['curve'] += [curve] * len(values)
      columns['fraction'] += list(fractions(len(values) - 1))
      columns['mean_score'] += [float(value) for value in values]
  return columns


def _curves_figure(mean_curves: dict[str, dict[str, np.ndarray]], results: dict[str, float]):
  """Two panels, deletion and insertion: the mean curve of each order, its AUC in the legend."""
  from matplotlib import figure as mpl_figure  # pylint: disable=g-import-not-at-top
  from matplotlib.backends import backend_agg  # pylint: disable=g-import-not-at-top
  figure = mpl_figure.Figure(figsize=(10, 3.8))
  backend_agg.FigureCanvasAgg(figure)
  panels = figure.subplots(1, 2, sharey=True)
  titles = {'deletion': 'deletion (lower AUC is better)',
            'insertion': 'insertion (higher AUC is better)'}
  for axis, curve in zip(panels, CURVES):
    for order, by_curve in mean_curves.items():
      style = dict(color='grey', linestyle='--') if order == RANDOM else {}
      axis.plot(fractions(len(by_curve[curve]) - 1), by_curve[curve],
                label=f'{order} (AUC {results[f"{curve}_auc_{order}"]:.3f})', **style)
    axis.set_title(titles[curve])
    axis.set_xlabel(f'fraction of pixels {"deleted" if curve == "deletion" else "inserted"}')
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    axis.legend()
  panels[0].set_ylabel('probability of the predicted class')
  return figure


def subset_masks(key: jax.Array, indices: jax.Array, num_pixels: int, subsets: int,
                 size: int) -> jax.Array:
  """bool [B, subsets, num_pixels]: for each example index, `subsets` random sets of `size`
  pixels, drawn with fold_in(key, index) (independent of the batch)."""

  def masks(index):
    keys = jax.random.split(jax.random.fold_in(key, index), subsets)
    chosen = jax.vmap(lambda k: jax.random.permutation(k, num_pixels)[:size])(keys)
    return jnp.zeros((subsets, num_pixels), bool).at[
        jnp.arange(subsets)[:, None], chosen].set(True)

  return jax.vmap(masks)(indices)


def subset_function(run: runs.Run, order: str, config: ml_collections.ConfigDict):
  """A jitted function (arrays, images, labels, indices) -> (attributed, drops), each float32
  [B, subsets]: Σ_{i∈S} m_i of the `order` map kind (uniform random values for RANDOM) and
  f_c(x) − f_c(x with S set to `baseline`), c the target class, for each random subset S of
  `subset_size` pixels (FaithfulnessCorrelation's docstring)."""
  compute_map = None if order == RANDOM else evaluators.map_function(run, order, config)
  key = jax.random.key(config.seed)
  model_rng, subset_key, random_key = (jax.random.fold_in(key, index) for index in range(3))

  def subsets(arrays, images, labels, indices):
    pixels = preprocessing.to_unit_range(images)
    batch, height, width, _ = pixels.shape
    logits, _ = run.apply(arrays, pixels, model_rng)
    classes = maps.target_classes(logits, labels, config.target)[:, None]
    if compute_map is None:
      values = jax.vmap(lambda index: jax.random.uniform(jax.random.fold_in(random_key, index),
                                                         (height * width,)))(indices)
    else:
      values = compute_map(arrays, pixels, labels, model_rng).reshape(batch, -1)
    masks = subset_masks(subset_key, indices, height * width, config.subsets,
                         config.subset_size)
    attributed = jnp.sum(masks * values[:, None], axis=-1)

    def dropped_logit(mask):  # mask [B, H·W] -> f_c [B] with those pixels at the baseline
      removed = jnp.where(mask.reshape(batch, height, width, 1), jnp.float32(config.baseline),
                          pixels)
      return jnp.take_along_axis(run.apply(arrays, removed, model_rng)[0], classes, -1)[:, 0]

    dropped = jax.lax.map(dropped_logit, masks.transpose(1, 0, 2), batch_size=config.map_chunk)
    drops = jnp.take_along_axis(logits, classes, -1) - dropped.T
    return attributed, drops.astype(jnp.float32)

  return jax.jit(subsets)


@evaluators.register
class FaithfulnessCorrelation(evaluators.Evaluator):
  """Faithfulness correlation (Bhatt, Weller & Moura, "Evaluating and Aggregating Feature-based
  Model Explanations", IJCAI 2020, Eq. 2): per example, over `subsets` random sets S of
  `subset_size` pixels (all channels of a pixel together), the Pearson correlation of the map's
  mass on S, Σ_{i∈S} m_i, with the fall of the explained logit when S is set to `baseline`,
  f_c(x) − f_c(x_S); c is the `target` class. Results: `faithfulness_correlation_<kind>` for
  each map kind and for uniform random maps ('random', the baseline), means over the examples
  (higher is more faithful; a constant map gives 0). Files: per_example.csv."""
  name = 'faithfulness_correlation'

  fields = cf.with_defaults(evaluators.Evaluator.fields, max_examples=500) + (
      evaluators.MAP_FIELDS + (
          cf.Field('subsets', 100, 'Random pixel sets per example.', cf.integer(2)),
          cf.Field('subset_size', 40, 'Pixels per set (about 5% of a 28 × 28 image).',
                   cf.POSITIVE_INTEGER),
          cf.Field('baseline', 0., 'The value in [0, 1] removed pixels take (0: black).',
                   cf.number(0, 1)),
      ))

  def evaluate(self, run: runs.Run, output: evaluators.Output) -> dict[str, float]:
    config = self.config
    _check_at_most_pixels(run, 'subset_size', config.subset_size)
    examples = evaluators.examples(run, config)
    labels = examples['label']
    arrays = {'image': examples['image'], 'label': labels, 'index': np.arange(len(labels))}
    correlations = {}
    for order in (*config.maps, RANDOM):
      function = subset_function(run, order, config)
      attributed, drops = evaluators.batched(
          lambda batch, _, function=function: function(run.arrays, batch['image'],
                                                       batch['label'], batch['index']),
          arrays, config.batch_size)
      correlations[f'faithfulness_correlation_{order}'] = randomisation.pearson(
          np.asarray(attributed, np.float64), np.asarray(drops, np.float64))
    output.write_csv('per_example.csv', {'example': np.arange(len(labels)), 'label': labels,
                                         **correlations})
    return {name: float(values.mean()) for name, values in correlations.items()}
