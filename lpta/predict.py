"""Classifies your own images with a trained run and draws where it attends.

  python -m lpta.predict --workdir=runs/quickstart [--step=latest|best|N] [--output_dir=DIR] \
      [--maps=attention|activation|gradcam] IMAGE [IMAGE ...]

For each image it prints the five most probable classes with their probabilities, and writes
the run's attention figure (the image overlaid with each attention map, as in training) to
`<output_dir>/<image name>_attention.png`. With `--maps`, the figure shows one map of that kind
instead (lpta.maps: the learned maps averaged over levels, the activation map, or Grad-CAM of the
predicted class) and is named `<image name>_<kind>.png`. Images of another size or channel count
than the run's are framed as the run's evaluation images were (`evaluation_framing`: resized,
bilinear, and centre-cropped, keeping the aspect ratio) and converted, with a note. Nothing but
the checkpoint is read: no data set, no TensorFlow.
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
from lpta.data import cub
from lpta.data import preprocessing
from lpta.data import streamed
from lpta.errors import LptaError

_WORKDIR = flags.DEFINE_string('workdir', None, 'Workdir of a trained lpta run.')
_STEP = flags.DEFINE_string('step', 'latest', command_line.STEP_HELP)
_OUTPUT_DIR = flags.DEFINE_string('output_dir', 'predictions',
                                  'Folder (or URL) for the attention figures.')
_MAPS = flags.DEFINE_enum('maps', None, maps.KINDS,
                          'Draw this kind of map instead of the run\'s own figure.')
_TOP_K = 5
USAGE = command_line.usage(
    'python -m lpta.predict --workdir=RUN [flags] IMAGE [IMAGE ...]',
    'Classifies your own images with a trained run: prints the five most probable classes of '
    'each and writes a figure of where the run attends (its attention maps overlaid on the '
    'image, or one map of --maps) to --output_dir. An image of another size is resized and '
    'centre-cropped as the run\'s evaluation images were, with a note. Only the checkpoint is '
    'read (no data set); see docs/using_runs.md for using runs from Python.',
    ['python -m lpta.predict --workdir=runs/quickstart shirt.png',
     'python -m lpta.predict --workdir=runs/quickstart --step=best --maps=gradcam shirt.png '
     'boot.jpg'],
    ['workdir', 'step', 'maps', 'output_dir'])


def evaluation_framing(data_config) -> float | None:
  """How the run's data set framed its evaluation images, which decides how a user's image of
  another shape is prepared: the fraction of the short side that the central crop keeps (the
  image is resized so that the crop is the run's H×W: ImageNet 224/256, as resizing the short
  side to 256 and cropping 224; Stanford Dogs 1, its central square; the data sets whose images
  all have the run's shape 1 too, which crops nothing of an image of their aspect ratio), or
  None where the evaluation images were resized to H×W without keeping their aspect ratio
  (CUB-200-2011's box crops)."""
  name = data_config.get('name')
  if name in cub.CubSource.names:
    return None
  return streamed.EVAL_CROP_FRACTIONS.get(name, 1.)


def read_image(path: str, image_shape,
               framing: float | None = 1.) -> tuple[np.ndarray, str | None]:
  """uint8 [H, W, C] of the run's shape from an image file, and a note if it was changed.

  An image of another size is resized (bilinear) and cropped as `framing`
  (evaluation_framing) says; one of the run's size is kept as it is.
  """
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
    image, change = _framed(image, width, height, framing)
    changes.append(change)
  array = np.asarray(image, np.uint8).reshape(height, width, channels)
  return array, ('; '.join(changes) if changes else None)


def _framed(image, width: int, height: int, framing: float | None):
  """(a PIL image resized and centre-cropped to width × height, what was done)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  old_width, old_height = image.size
  if framing is None:
    return (image.resize((width, height), Image.Resampling.BILINEAR),
            f'resized from {old_width}×{old_height} to {width}×{height}, not keeping its aspect '
            "ratio, as the run's evaluation images were")
  # The central box of the image that becomes width × height, in whole pixels as the data sets'
  # evaluation crops (lpta.data.streamed.centre_crop): the resized image's short side is
  # 1/framing of the crop's.
  scale = max(width / old_width, height / old_height) / framing
  box_width, box_height = int(width / scale + 1e-9), int(height / scale + 1e-9)
  left, top = (old_width - box_width) // 2, (old_height - box_height) // 2
  resized = image.crop((left, top, left + box_width, top + box_height)).resize(
      (width, height), Image.Resampling.BILINEAR)
  new_width, new_height = round(old_width * scale), round(old_height * scale)
  if (new_width, new_height) == (width, height):
    return resized, f'resized from {old_width}×{old_height} to {width}×{height}'
  if scale == 1:
    return resized, f'centre-cropped from {old_width}×{old_height} to {width}×{height}'
  return resized, (f'resized from {old_width}×{old_height} to {new_width}×{new_height} and '
                   f'centre-cropped to {width}×{height}')


def top_classes(logits: np.ndarray, class_names, k: int = _TOP_K) -> list[tuple[str, float]]:
  """The k most probable (class name, probability) of one example's logits [K]."""
  probabilities = np.asarray(jax.nn.softmax(logits.astype(np.float32)))
  order = np.argsort(-probabilities)[:k]
  return [(class_names[index], float(probabilities[index])) for index in order]


def predict_files(run: runs.Run, paths, output_dir: epath.PathLike,
                  map_kind: str | None = None) -> list[str]:
  """Prints the top classes of each image and writes its figure (the run's own, or one map of
  `map_kind`); returns the figures written."""
  framing = evaluation_framing(run.config.data)
  images, notes = zip(*(read_image(path, run.image_shape, framing) for path in paths))
  images = np.stack(images)
  # A few images go in one batch of exactly them: nothing padded, one compilation.
  logits, aux = run.predict(images,
                            batch_size=min(len(images), runs.default_predict_batch_size()))
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
  step = command_line.checkpoint_step(_STEP.value)
  try:
    run = runs.load_run(_WORKDIR.value, step)
    print(f'{run.description()}; images {run.image_shape}.')
    predict_files(run, paths, _OUTPUT_DIR.value, _MAPS.value)
  except LptaError as error:
    sys.exit(f'error: {error}')


if __name__ == '__main__':
  app.run(main, flags_parser=command_line.flags_parser(USAGE))
