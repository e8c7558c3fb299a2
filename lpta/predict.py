"""Classifies your own images with a trained run and draws where it attends.

  python -m lpta.predict --workdir=runs/quickstart [--step=latest|best|N] [--output_dir=DIR] \
      [--maps=attention|activation|gradcam] IMAGE [IMAGE ...]

For each image it prints the five most probable classes with their probabilities, and writes
the run's attention figure (the image overlaid with each attention map, as in training) to
`<output_dir>/<image name>_attention.png`. With `--maps`, the figure shows one map of that kind
instead (lpta.maps: the learned maps averaged over levels, the activation map, or Grad-CAM of the
predicted class) and is named `<image name>_<kind>.png`. Images of another size or channel count than the
run's are resized (bilinear) and converted, with a note. Nothing but the checkpoint is read: no
data set, no TensorFlow.
"""

import pathlib
import sys

from absl import app
from absl import flags
from etils import epath
import jax
import jax.numpy as jnp
import numpy as np

from lpta import command_line
from lpta import maps
from lpta import runs
from lpta import summaries
from lpta.data import preprocessing
from lpta.errors import LptaError

_WORKDIR = flags.DEFINE_string('workdir', None, 'Workdir of a trained lpta run.')
_STEP = flags.DEFINE_string('step', 'latest', "Checkpoint to use: 'latest', 'best' or a step.")
_OUTPUT_DIR = flags.DEFINE_string('output_dir', 'predictions',
                                  'Folder (or URL) for the attention figures.')
_MAPS = flags.DEFINE_enum('maps', None, maps.KINDS,
                          'Draw this kind of map instead of the run\'s own figure.')
_TOP_K = 5


def read_image(path: str, image_shape) -> tuple[np.ndarray, str | None]:
  """uint8 [H, W, C] of the run's shape from an image file, and a note if it was changed."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  height, width, channels = image_shape
  try:
    with epath.Path(path).open('rb') as file:
      image = Image.open(file)
      image.load()
  except (OSError, ValueError) as error:
    raise LptaError(f'cannot read the image {path} ({error}).') from error
  changes = []
  mode = 'L' if channels == 1 else 'RGB'
  if image.mode != mode:
    changes.append(f'converted from {image.mode} to {mode}')
    image = image.convert(mode)
  if image.size != (width, height):
    changes.append(f'resized from {image.size[0]}×{image.size[1]} to {width}×{height}')
    image = image.resize((width, height), Image.Resampling.BILINEAR)
  array = np.asarray(image, np.uint8).reshape(height, width, channels)
  return array, ('; '.join(changes) if changes else None)


def top_classes(logits: np.ndarray, class_names, k: int = _TOP_K) -> list[tuple[str, float]]:
  """The k most probable (class name, probability) of one example's logits [K]."""
  probabilities = np.asarray(jax.nn.softmax(logits.astype(np.float32)))
  order = np.argsort(-probabilities)[:k]
  return [(class_names[index], float(probabilities[index])) for index in order]


def predict_files(run: runs.Run, paths, output_dir: epath.PathLike,
                  map_kind: str | None = None) -> list[str]:
  """Prints the top classes of each image and writes its figure (the run's own, or one map of
  `map_kind`); returns the figures written."""
  images, notes = zip(*(read_image(path, run.image_shape) for path in paths))
  images = np.stack(images)
  logits, aux = run.predict(images)
  if map_kind is None:
    figure_arrays = [np.asarray(a) for a in run.family.figure_arrays(aux)]
    draw, suffix = run.family.draw_figure, 'attention'
  else:
    pixels = preprocessing.to_unit_range(jnp.asarray(images))
    figure_arrays = [np.asarray(maps.map_function(run, map_kind)(
        run.arrays, pixels, jnp.argmax(logits, -1), jax.random.key(0)))]
    draw, suffix = summaries.overlay_grid, map_kind
  written = []
  for index, path in enumerate(paths):
    print(f'{path}:' + (f' (note: {notes[index]})' if notes[index] else ''))
    for rank, (name, probability) in enumerate(top_classes(np.asarray(logits[index]),
                                                           run.class_names), start=1):
      print(f'  {rank}. {name:<24} {probability:.4f}')
    grid = draw(images[index:index + 1], [a[index:index + 1] for a in figure_arrays])
    if grid is None:
      continue
    figure = epath.Path(output_dir) / f'{pathlib.PurePath(path).stem}_{suffix}.png'
    summaries.save_png(figure, grid)
    written.append(str(figure))
    print(f'  {suffix} figure: {figure}')
  return written


def main(argv):
  command_line.quiet_library_info()
  paths = argv[1:]
  if not _WORKDIR.value or not paths:
    sys.exit('error: give --workdir=<a trained run> and at least one image, e.g. python -m '
             'lpta.predict --workdir=runs/quickstart shirt.png')
  try:
    step = int(_STEP.value) if _STEP.value.isdigit() else _STEP.value
    run = runs.load_run(_WORKDIR.value, step)
    print(f'{run.config.model.name} from {run.checkpoint} (step {run.step}), trained on '
          f'{run.config.data.name}; images {run.image_shape}.')
    predict_files(run, paths, _OUTPUT_DIR.value, _MAPS.value)
  except LptaError as error:
    sys.exit(f'error: {error}')


if __name__ == '__main__':
  app.run(main)
