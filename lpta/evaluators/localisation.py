"""How well a run's maps find the object: pointing game, energy, box IoU and mask Jaccard.

  python -m lpta.evaluate --workdir=W --eval=localisation [--eval.maps="('attention','gradcam')"]

For each map kind of `maps` (lpta.maps: 'attention', 'activation', 'gradcam') and for a centre
baseline (an isotropic Gaussian centred on the image, σ = a quarter of each side: the prior that
objects sit in the middle), per example, with M the map [H, W] (non-negative, maximum 1), B the
object box and S the object mask:
  pointing hit: the map's maximum (the first one in row-major order) lies in B, within
    `pointing_tolerance` pixels (Zhang et al. 2016); the centre baseline points at the centre.
  energy: Σ_{B} M / Σ M, the share of the map's mass in the box (energy-based pointing game,
    Wang et al. 2020); a uniform map scores area(B) / area(image), an all-zero map 0.
  box IoU: IoU of B with the bounding box of the largest connected component (4-connected) of
    {M ≥ box_threshold · max M} (the CAM protocol, Zhou et al. 2016); `box_accuracy` is the
    share with IoU ≥ 0.5.
  Jaccard: |A ∩ S| / |A ∪ S| with A = {M ≥ mask_threshold · max M} (LTPA's weakly supervised
    segmentation, Jetley et al. 2018 §5).
Boxes are (top, left, bottom, right), bottom and right exclusive: the batch's 'box' (the
translated and cluttered canvases carry one) or else the bounding box of the foreground. Masks
are the batch's 'segmentation' when it has one (caltech_birds2011), else the foreground inside the box: pixels with any
channel above `foreground_threshold` (in [0, 1]). Foreground masks suit objects on a black
background (Fashion-MNIST, the canvases), not natural images.

Results: `<metric>_<kind>` for metric in pointing, energy, box_iou, box_accuracy, jaccard, and
kind in the map kinds and 'centre'. Files: scores.png (the metrics side by side), examples.png
(maps, their boxes in red, the object's box in green), per_example.csv.
"""

import numpy as np
from scipy import ndimage

from lpta import config_fields as cf
from lpta import evaluators
from lpta import runs

METRICS = ('pointing', 'energy', 'box_iou', 'box_accuracy', 'jaccard')
CENTRE = 'centre'
_FIGURE_EXAMPLES = 6


def centre_prior(height: int, width: int) -> np.ndarray:
  """[H, W] exp(−½((r − r₀)/σ_r)² − ½((c − c₀)/σ_c)²) at the image centre, σ = side / 4."""
  rows = (np.arange(height) + .5 - height / 2) / (height / 4)
  columns = (np.arange(width) + .5 - width / 2) / (width / 4)
  return np.exp(-.5 * (rows[:, None]**2 + columns[None, :]**2)).astype(np.float32)


def foreground_masks(images: np.ndarray, threshold: float) -> np.ndarray:
  """bool [N, H, W]: pixels with any channel above threshold (images uint8 [N, H, W, C])."""
  return (images.astype(np.float32) / 255. > threshold).any(axis=-1)


def bounding_box(mask: np.ndarray) -> np.ndarray:
  """(top, left, bottom, right), bottom and right exclusive, of a bool [H, W] mask; an empty
  mask gives the empty box (0, 0, 0, 0)."""
  rows, columns = np.nonzero(mask)
  if rows.size == 0:
    return np.zeros(4, np.int64)
  return np.array([rows.min(), columns.min(), rows.max() + 1, columns.max() + 1])


def box_mask(box: np.ndarray, height: int, width: int) -> np.ndarray:
  """bool [H, W], True inside box (top, left, bottom, right)."""
  mask = np.zeros((height, width), bool)
  top, left, bottom, right = np.asarray(box).astype(int)
  mask[max(top, 0):bottom, max(left, 0):right] = True
  return mask


def box_iou(first: np.ndarray, second: np.ndarray) -> float:
  """Intersection over union of two boxes (top, left, bottom, right)."""
  height = min(first[2], second[2]) - max(first[0], second[0])
  width = min(first[3], second[3]) - max(first[1], second[1])
  intersection = max(height, 0) * max(width, 0)
  area = lambda box: max(box[2] - box[0], 0) * max(box[3] - box[1], 0)
  union = area(first) + area(second) - intersection
  return float(intersection / union) if union > 0 else 0.


def largest_component_box(binary: np.ndarray) -> np.ndarray:
  """The bounding box of the largest 4-connected component of a bool [H, W] mask."""
  labels, count = ndimage.label(binary)
  if count == 0:
    return np.zeros(4, np.int64)
  sizes = np.bincount(labels.ravel())[1:]
  return bounding_box(labels == 1 + int(np.argmax(sizes)))


def pointing_hit(point, box: np.ndarray, tolerance: float) -> bool:
  """Whether point (row, column), as a pixel centre, lies within `tolerance` pixels of box."""
  row, column = point[0] + .5, point[1] + .5
  drow = max(box[0] - row, 0., row - box[2])
  dcolumn = max(box[1] - column, 0., column - box[3])
  return bool(np.hypot(drow, dcolumn) <= tolerance) if tolerance > 0 else bool(
      drow <= 0 and dcolumn <= 0)


def scores(saliency: np.ndarray, box: np.ndarray, mask: np.ndarray, config,
           point=None) -> dict[str, float]:
  """The METRICS of one map [H, W] (non-negative) against its box and mask [H, W]; `point`
  (row, column) replaces the map's maximum for the pointing game."""
  height, width = saliency.shape
  if point is None:
    point = np.unravel_index(int(np.argmax(saliency)), saliency.shape)
  inside = box_mask(box, height, width)
  total, peak = float(saliency.sum()), float(saliency.max())
  predicted_box = largest_component_box(saliency >= config.box_threshold * peak) if peak > 0 \
      else np.zeros(4, np.int64)
  segment = saliency >= config.mask_threshold * peak if peak > 0 else np.zeros_like(mask)
  union = np.logical_or(segment, mask).sum()
  iou = box_iou(predicted_box, box)
  return {
      'pointing': float(pointing_hit(point, box, config.pointing_tolerance)),
      'energy': float(saliency[inside].sum() / total) if total > 0 else 0.,
      'box_iou': iou,
      'box_accuracy': float(iou >= .5),
      'jaccard': float(np.logical_and(segment, mask).sum() / union) if union else 0.,
  }


@evaluators.register
class Localisation(evaluators.Evaluator):
  """The module docstring's scores for each map kind and the centre baseline."""
  name = 'localisation'

  fields = evaluators.Evaluator.fields + evaluators.MAP_FIELDS + (
      cf.Field('pointing_tolerance', 0., 'Pixels around the box that still count as a hit.',
               cf.number(0), hint='(pixels)'),
      cf.Field('box_threshold', .2, "The fraction of the map's maximum kept for the box (CAM: "
               '0.2).', cf.number(0, 1)),
      cf.Field('mask_threshold', .5, "The fraction of the map's maximum that binarises it for "
               'Jaccard.', cf.number(0, 1)),
      cf.Field('foreground_threshold', .1, 'The pixel value in [0, 1] above which a pixel is the '
               'object.', cf.number(0, 1)),
  )

  def evaluate(self, run: runs.Run, output: evaluators.Output) -> dict[str, float]:
    config = self.config
    arrays = evaluators.examples(run, config)
    images = arrays['image']
    height, width = images.shape[1:3]
    foreground = foreground_masks(images, config.foreground_threshold)
    boxes = arrays['box'] if 'box' in arrays else np.stack([bounding_box(m) for m in foreground])
    masks = arrays['segmentation'].astype(bool) if 'segmentation' in arrays else np.stack(
        [f & box_mask(b, height, width) for f, b in zip(foreground, boxes)])
    all_maps = {kind: evaluators.compute_maps(run, evaluators.map_function(run, kind, config),
                                              arrays, config) for kind in config.maps}
    centre = centre_prior(height, width)
    centre_point = (height // 2, width // 2)
    per_example = {kind: [scores(m, b, s, config) for m, b, s in zip(kind_maps, boxes, masks)]
                   for kind, kind_maps in all_maps.items()}
    per_example[CENTRE] = [scores(centre, b, s, config, centre_point)
                           for b, s in zip(boxes, masks)]
    results = {f'{metric}_{kind}': float(np.mean([s[metric] for s in values]))
               for kind, values in per_example.items() for metric in METRICS}
    columns = {'example': np.arange(len(images)), 'label': arrays['label']}
    for kind, values in per_example.items():
      columns.update({f'{metric}_{kind}': [s[metric] for s in values] for metric in METRICS})
    output.write_csv('per_example.csv', columns)
    output.save_figure(_scores_figure(results, list(per_example)), 'scores.png')
    output.save_figure(_examples_figure(images, boxes, {**all_maps, CENTRE: np.broadcast_to(
        centre, (len(images), height, width))}, config), 'examples.png')
    return results

def _scores_figure(results, kinds):
  from matplotlib import figure as mpl_figure  # pylint: disable=g-import-not-at-top
  figure = mpl_figure.Figure(figsize=(1.6 * len(METRICS) + 2, 3.2))
  axes = figure.subplots()
  width = .8 / len(kinds)
  for index, kind in enumerate(kinds):
    positions = np.arange(len(METRICS)) + (index - (len(kinds) - 1) / 2) * width
    axes.bar(positions, [results[f'{metric}_{kind}'] for metric in METRICS], width, label=kind)
  axes.set_xticks(np.arange(len(METRICS)), METRICS)
  axes.set_ylim(0, 1)
  axes.set_ylabel('mean over examples')
  axes.legend()
  return figure


def _examples_figure(images, boxes, all_maps, config):
  from matplotlib import figure as mpl_figure  # pylint: disable=g-import-not-at-top
  from matplotlib import patches  # pylint: disable=g-import-not-at-top
  count = min(_FIGURE_EXAMPLES, len(images))
  kinds = list(all_maps)
  figure = mpl_figure.Figure(figsize=(1.8 * (len(kinds) + 1), 1.8 * count))
  axes = figure.subplots(count, len(kinds) + 1, squeeze=False)

  def outline(axis, box, colour):
    top, left, bottom, right = box
    axis.add_patch(patches.Rectangle((left - .5, top - .5), right - left, bottom - top,
                                     fill=False, edgecolor=colour, linewidth=1.5))

  for row in range(count):
    image = images[row].squeeze(-1) if images.shape[-1] == 1 else images[row]
    for column, kind in enumerate(['image', *kinds]):
      axis = axes[row, column]
      axis.imshow(image, cmap='gray')
      if kind != 'image':
        saliency = all_maps[kind][row]
        axis.imshow(saliency, cmap='jet', alpha=.45, vmin=0, vmax=1)
        if saliency.max() > 0:
          outline(axis, largest_component_box(saliency >= config.box_threshold * saliency.max()),
                  'red')
      outline(axis, boxes[row], 'lime')
      axis.set_axis_off()
      if row == 0:
        axis.set_title(kind)
  return figure
