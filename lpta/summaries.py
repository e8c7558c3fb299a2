"""Figures: attention maps overlaid on their images, and glimpses drawn on theirs.

A figure is a grid with one row per image: for attention maps the columns L1, ..., Ln, original
image; for glimpse models the image with every glimpse's patches outlined, then the original. It
goes to TensorBoard through a CLU writer and to `<workdir>/attention/step_<step>.png`.
"""

from typing import Sequence

from etils import epath
import jax
import jax.numpy as jnp
import numpy as np

# Outline colours of glimpse steps 1, 2, ... (PIL colour names), repeated after the last.
STEP_COLOURS = ('red', 'lime', 'blue', 'yellow', 'cyan', 'magenta', 'orange', 'white')
HEATMAP_WEIGHT = 0.4  # overlay = (1 − w)·image + w·jet(map)
MIN_TILE_SIZE = 96  # tiles smaller than this are enlarged (nearest) so that they stay readable


def jet(values: np.ndarray) -> np.ndarray:
  """matplotlib's 'jet' colour map: values in [0, 1] (clipped), any shape [...] -> RGB in
  [0, 1], shape [..., 3]. 0 is dark blue (0, 0, .5), 1 dark red (.5, 0, 0)."""
  from matplotlib import colormaps  # pylint: disable=g-import-not-at-top  (kept out of import)
  return colormaps['jet'](np.clip(np.asarray(values, np.float64), 0., 1.))[..., :3]


def min_max_scale(maps):
  """Each map of [N, h, w] scaled to [0, 1] by its own minimum and maximum (numpy or jax)."""
  low = maps.min(axis=(1, 2), keepdims=True)
  high = maps.max(axis=(1, 2), keepdims=True)
  return (maps - low) / jnp.maximum(high - low, 1e-12)


def upsample(attention_maps: np.ndarray, height: int, width: int) -> np.ndarray:
  """Bilinear upsampling with half-pixel centres: [N, h, w] -> [N, height, width]."""
  resized = jax.image.resize(jnp.asarray(attention_maps, jnp.float32),
                             (attention_maps.shape[0], height, width), 'bilinear')
  return np.asarray(resized)


def overlay_grid(images: np.ndarray, attention_maps: Sequence[np.ndarray]) -> np.ndarray:
  """The figure: rows = images, columns = L1..Ln overlays then the original.

  Args:
    images: uint8 [N, H, W, C] with C = 1 or 3, as stored in the data set.
    attention_maps: one [N, h_s, w_s] array per level, L1 first, with values in [0, 1].
  Returns:
    float32 [N·T, (n + 1)·T, 3] in [0, 1], where T = H enlarged to at least MIN_TILE_SIZE.
  """
  height, width = images.shape[1:3]
  rgb = np.broadcast_to(images, (*images.shape[:3], 3)).astype(np.float32) / 255.
  columns = []
  for attention_map in attention_maps:
    heat = jet(upsample(np.asarray(attention_map, np.float32), height, width))
    columns.append((1. - HEATMAP_WEIGHT) * rgb + HEATMAP_WEIGHT * heat)
  columns.append(rgb)
  grid = np.concatenate([np.concatenate(list(column), axis=0) for column in columns], axis=1)
  return _enlarged(grid, _enlargement(height)).astype(np.float32)


def _enlargement(height: int) -> int:
  """The integer factor that makes tiles of `height` at least MIN_TILE_SIZE high."""
  return -(-MIN_TILE_SIZE // height)


def _enlarged(images: np.ndarray, scale: int) -> np.ndarray:
  """Images [..., H, W, C] enlarged `scale` times by nearest neighbour."""
  return np.repeat(np.repeat(images, scale, axis=-3), scale, axis=-2)


def glimpse_grid(images: np.ndarray, locations: np.ndarray, sides) -> np.ndarray:
  """The glimpse figure: per image, its glimpses' patches outlined, then the original.

  Args:
    images: uint8 [N, H, W, C] with C = 1 or 3.
    locations: [N, T, 2] glimpse locations (x, y) in [-1, 1]² (lpta.models.glimpse).
    sides: the patch sides in pixels, one outline each per glimpse; step t in STEP_COLOURS[t].
  Returns:
    float32 [N·s·H, 2·s·W, 3] in [0, 1], s the enlargement that makes s·H >= MIN_TILE_SIZE.
  """
  from PIL import Image, ImageDraw  # pylint: disable=g-import-not-at-top
  from lpta.models import glimpse  # pylint: disable=g-import-not-at-top
  height, width = images.shape[1:3]
  scale = _enlargement(height)
  enlarged = _enlarged(np.broadcast_to(images, (*images.shape[:3], 3)), scale)
  rows = []
  for tile, image_locations in zip(enlarged, np.asarray(locations)):
    drawing = Image.fromarray(np.ascontiguousarray(tile))
    draw = ImageDraw.Draw(drawing)
    for step, location in enumerate(image_locations):
      for side in sides:
        top, left = np.asarray(glimpse.patch_corners(location, height, width, side)) * scale
        draw.rectangle((left, top, left + side * scale - 1, top + side * scale - 1),
                       outline=STEP_COLOURS[step % len(STEP_COLOURS)])
    rows.append(np.concatenate([np.asarray(drawing), tile], axis=1))
  return (np.concatenate(rows, axis=0) / 255.).astype(np.float32)


def save_png(path: epath.PathLike, grid: np.ndarray) -> None:
  """Writes a [H, W, 3] float image in [0, 1] as an 8-bit PNG to a path or URL."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  path = epath.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  with path.open('wb') as file:
    Image.fromarray(np.round(grid * 255.).astype(np.uint8)).save(file, format='PNG')


def write_figure(writer, workdir: epath.PathLike, step: int, grid: np.ndarray) -> None:
  """Writes a figure to TensorBoard (`attention_maps`) and as a PNG under workdir."""
  writer.write_images(step, {'attention_maps': grid[None]})
  save_png(epath.Path(workdir) / 'attention' / f'step_{step:08d}.png', grid)
