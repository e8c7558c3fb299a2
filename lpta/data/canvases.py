"""Fashion-MNIST on larger canvases: the translated and cluttered tasks of RAM (Mnih et al. 2014).

Each 28×28 Fashion-MNIST image is placed at a uniformly random position on a black canvas of
`canvas_size`² pixels (RAM: 60). The cluttered task first scatters `clutter_pieces` random
`clutter_piece_size`² crops of other images of the same TFDS split (train or test; the validation
split is held out of the train canvases afterwards) at random positions (RAM's 60×60
task: 4 pieces of 8×8); item and clutter are combined by a pixelwise maximum, so clutter never
erases the item. Batches carry the item's box, 'box' int32 [4] = (top, left, bottom, right) in
pixels, bottom and right exclusive.

The canvases are drawn from fixed seeds, one per split, independent of `config.seed`: every run
trains and tests on the same canvases. They are made from the Fashion-MNIST that lpta.data
prepares offline from the Debian package, so no other data set is needed.

Its fields of `config.data` are `CanvasSource.fields`. Random crops and flips are refused (they would move the item away from its box), and so is ZCA
(black would no longer be zero).
"""

import ml_collections
import numpy as np

from lpta import config_fields as cf
from lpta import data
from lpta import errors
from lpta.data import in_memory

ITEM_SIZE = 28  # Fashion-MNIST images are 28×28×1
_SPLIT_SEEDS = {'train': 0, 'test': 1}
_CANVAS_SEED = 60  # with the split's seed: the generator of that split's canvases


def place_on_canvases(images: np.ndarray, canvas_size: int, clutter_pieces: int,
                      clutter_piece_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """(canvases uint8 [N, S, S, C], boxes int32 [N, 4]) for images uint8 [N, h, w, C].

  Image i goes at a uniformly random top-left corner in [0, S − h] × [0, S − w]; before it,
  `clutter_pieces` crops of random other images go at random positions; pixelwise maximum.
  A function of `seed` and the images alone.
  """
  num_images, height, width, channels = images.shape
  if clutter_pieces and num_images < 2:
    raise errors.DataError('clutter needs at least two images to cut pieces from.')
  rng = np.random.default_rng([_CANVAS_SEED, seed])
  canvases = np.zeros((num_images, canvas_size, canvas_size, channels), np.uint8)
  corners = rng.integers(0, [canvas_size - height + 1, canvas_size - width + 1],
                         size=(num_images, 2))
  piece = clutter_piece_size
  if clutter_pieces:
    others = (np.arange(num_images)[:, None]
              + rng.integers(1, num_images, size=(num_images, clutter_pieces))) % num_images
    crops = rng.integers(0, [height - piece + 1, width - piece + 1],
                         size=(num_images, clutter_pieces, 2))
    spots = rng.integers(0, canvas_size - piece + 1, size=(num_images, clutter_pieces, 2))
    for i in range(num_images):
      for other, (cy, cx), (sy, sx) in zip(others[i], crops[i], spots[i]):
        window = canvases[i, sy:sy + piece, sx:sx + piece]
        np.maximum(window, images[other, cy:cy + piece, cx:cx + piece], out=window)
  for i, (top, left) in enumerate(corners):
    window = canvases[i, top:top + height, left:left + width]
    np.maximum(window, images[i], out=window)
  boxes = np.concatenate([corners, corners + [height, width]], axis=1).astype(np.int32)
  return canvases, boxes


@data.register
class CanvasSource(in_memory.InMemorySource):
  """Fashion-MNIST items on canvases, with their boxes."""
  names = ('translated_fashion_mnist', 'cluttered_fashion_mnist')
  object_boxes = True
  fields = (
      cf.Field('canvas_size', 60, 'Side of the square canvas the 28×28 item is placed on (RAM: '
               '60).', cf.integer(ITEM_SIZE)),
      cf.Field('clutter_pieces', 0, 'Pieces of other images per canvas: 0 for '
               'translated_fashion_mnist, > 0 for cluttered_fashion_mnist (RAM: 4).',
               cf.integer(0)),
      cf.Field('clutter_piece_size', 8, 'Side of each clutter piece (1 to 28).', cf.integer(1)),
  )

  def validate(self):
    super().validate()
    config = self.config
    if config.clutter_piece_size > ITEM_SIZE:
      raise errors.ConfigError(f'config.data.clutter_piece_size={config.clutter_piece_size} '
                               f'must be at most {ITEM_SIZE}, the side of the images it is cut from.')
    cluttered = config.name == 'cluttered_fashion_mnist'
    if cluttered != (config.clutter_pieces > 0):
      raise errors.ConfigError(
          f'config.data.clutter_pieces={config.clutter_pieces} does not fit {config.name}: '
          'translated_fashion_mnist has none, cluttered_fashion_mnist at least one.')
    if config.zca:
      raise errors.ConfigError(f'{config.name} keeps black canvases black; set '
                               '--config.data.zca=False.')
    if config.random_crop_padding or config.random_flip:
      raise errors.ConfigError(
          f'{config.name} carries object boxes that crops and flips would not move; set '
          '--config.data.random_crop_padding=0 --config.data.random_flip=False.')

  @property
  def image_shape(self):
    return (self.config.canvas_size, self.config.canvas_size, 1)

  @property
  def num_classes(self):
    return in_memory.TFDS_SHAPES['fashion_mnist'][1]

  def read(self):
    items_config = ml_collections.ConfigDict(self.config.to_dict())
    items_config.name = 'fashion_mnist'
    splits = in_memory.TfdsSource(items_config).read()
    placed = []
    for split, arrays in zip(('train', 'test'), splits[:2]):
      canvases, boxes = place_on_canvases(
          arrays['image'], self.config.canvas_size, self.config.clutter_pieces,
          self.config.clutter_piece_size, _SPLIT_SEEDS[split])
      placed.append({'image': canvases, 'label': arrays['label'], 'box': boxes})
    return (*placed, splits[2])
