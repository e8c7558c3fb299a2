"""Data sources: one registered class per data set, behind one interface.

A source is bound to one `config.data` and owns everything the train loop needs from its data:
  - `image_shape` and `num_classes`, known without loading anything;
  - `load()`: the Dataset, holding this process's shards of the train, validation and test
    splits, the class names and the normalisation statistics fitted on the train split
    (lpta.data.preprocessing.Normalisation);
  - `augment(rng, batch)`: the random augmentation inside the jitted train step.
Batches are open dicts of numpy arrays: 'image' uint8 [b, H, W, C] and 'label' int32 [b], plus
'mask' float32 [b] in evaluation (0 for padding), plus whatever a source adds (e.g. 'box').

What `load()` returns is a `Dataset` (lpta.data.in_memory.Dataset,
lpta.data.streamed.StreamedDataset).

TensorFlow and TFDS are imported only when a TFDS data set is loaded, so the `synthetic` source,
the models and `lpta.load_run` work without them.

Fields of `config.data` (an `ml_collections.ConfigDict`):
  name: a registered source (`REGISTRY`): cifar10, cifar100, svhn_cropped, fashion_mnist (held
    in host memory), translated_fashion_mnist and cluttered_fashion_mnist (Fashion-MNIST on
    larger canvases, with object boxes: lpta.data.canvases), imagenet2012 and stanford_dogs
    (streamed from disk by lpta.data.streamed), caltech_birds2011 (CUB-200-2011 cropped to the
    birds' boxes and held in host memory, with boxes and segmentation masks: lpta.data.cub),
    synthetic (random uint8 images and labels from a fixed seed).
  data_dir: TFDS data directory; None uses TFDS's default (`$TFDS_DATA_DIR` or
    `~/tensorflow_datasets`).
  manual_dir: folder holding manually downloaded source files; None uses
    `<data_dir>/downloads/manual`. A data set that is not prepared yet is built from the files
    found there, otherwise downloaded by TFDS. `fashion_mnist` is built offline from the Debian
    package `dataset-fashion-mnist` when that is installed.
  train_split: the TFDS split to train on: 'train', or a subset such as 'train[:15000]' for
    short runs. Only 'train' for `synthetic`.
  validation_split: how many examples at the end of `train_split` are held out as the
    validation split (0: none). The validation accuracy ranks the "best" checkpoints; without
    a validation split no best checkpoint is kept. The test split is only evaluated and
    reported.
  zca: whether to fit a ZCA whitening matrix on the train split.
  zca_epsilon: added to the covariance eigenvalues before inverting them (e.g. 1e-2); must be
    positive when `zca` is set.
  random_crop_padding: zero padding in pixels on each side before the random crop (4 for CIFAR,
    0 for no crop).
  random_flip: whether to flip images horizontally at random (False for digits).
  image_size: side of the square images of a streamed data set (None: 224) or of
    caltech_birds2011 (None: 80); must be None for the others, whose images keep their size.
  synthetic_image_shape, synthetic_num_classes, synthetic_num_train, synthetic_num_test: the
    shape (H, W, C), classes and example counts (all processes together) of `synthetic`.
"""

from collections.abc import Sequence
from typing import ClassVar

import jax
import ml_collections

from lpta import errors
from lpta.data import preprocessing

EVAL_SPLITS = ('validation', 'test')  # in the order they are evaluated
COMMON_FIELDS = ('name', 'data_dir', 'manual_dir', 'zca', 'zca_epsilon', 'random_crop_padding',
                 'random_flip', 'image_size', 'train_split', 'validation_split')


class Dataset:
  """This process's view of a loaded data set. Subclasses have the attributes `num_examples`
  ({split: examples over all processes}, splits 'train', 'test' and maybe 'validation'),
  `class_names`, `image_shape` and `statistics` (a preprocessing.Normalisation), and implement
  the batch iterators."""
  num_examples: dict[str, int]
  class_names: tuple[str, ...]

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  @property
  def num_train_examples(self) -> int:
    return self.num_examples['train']

  @property
  def eval_splits(self) -> tuple[str, ...]:
    """The evaluated splits: 'validation' (if held out), then 'test'."""
    return tuple(split for split in EVAL_SPLITS if split in self.num_examples)

  def train_batches(self, local_batch_size: int, seed: int, start_step: int = 0):
    """This process's part of each global train batch, from global step `start_step` on."""
    raise NotImplementedError

  def eval_batches(self, split: str, local_batch_size: int):
    """This process's shard of `split` once, in padded batches with 'mask'; as many batches on
    every process."""
    raise NotImplementedError

  def first_images(self, count: int):
    """uint8 [n, H, W, C]: the first n <= count test images of this process (for figures)."""
    raise NotImplementedError


class Source:
  """A data set bound to one `config.data`; subclasses set `names` and implement the rest."""
  names: ClassVar[tuple[str, ...]]
  # Streamed sources draw their crops on the host, have fixed statistics and no ZCA.
  streamed: ClassVar[bool] = False
  # Whether batches carry each image's object box, 'box' int32 [b, 4] (top, left, bottom, right).
  object_boxes: ClassVar[bool] = False
  # Whether `config.data.image_size` sets the side of the square images of a source held in
  # memory, which resizes them when it loads them (streamed sources always take it).
  resized: ClassVar[bool] = False

  def __init__(self, data_config: ml_collections.ConfigDict):
    self.config = data_config
    self.validate()

  def validate(self) -> None:
    """Raises ConfigError naming the field for a missing or bad value of `config.data`."""
    config = self.config
    require_fields(config, COMMON_FIELDS)
    require_bool(config, 'zca')
    require_bool(config, 'random_flip')
    require_int(config, 'random_crop_padding', minimum=0)
    require_int(config, 'validation_split', minimum=0)
    epsilon = config.zca_epsilon
    if config.zca and (isinstance(epsilon, bool) or not isinstance(epsilon, (int, float))
                       or epsilon <= 0):
      raise errors.ConfigError(
          f'config.data.zca_epsilon={epsilon!r} must be a positive number when config.data.zca '
          'is set; use e.g. --config.data.zca_epsilon=0.01.')
    if not isinstance(config.train_split, str) or not config.train_split.startswith('train'):
      raise errors.ConfigError(
          f'config.data.train_split={config.train_split!r} must be the train split or a slice '
          "of it, e.g. 'train' or 'train[:15000]'.")
    if self.streamed and (config.random_crop_padding or config.zca):
      raise errors.ConfigError(
          f'{config.name} is streamed with random-resized crops and mean/std normalisation; '
          'set --config.data.random_crop_padding=0 --config.data.zca=False.')
    if self.streamed or self.resized:
      if config.image_size is not None:
        require_int(config, 'image_size', minimum=1)
    elif config.image_size is not None:
      sized = ', '.join(name for name, cls in REGISTRY.items() if cls.streamed or cls.resized)
      raise errors.ConfigError(
          f'config.data.image_size={config.image_size!r} only applies to streamed data sets '
          f'and those resized on loading ({sized}); {config.name} keeps its image size, so drop '
          'the override.')

  @property
  def image_shape(self) -> tuple[int, int, int]:
    """(H, W, C) of the images in a batch."""
    raise NotImplementedError

  @property
  def num_classes(self) -> int:
    raise NotImplementedError

  def load(self):
    """This process's view of the data set (a Dataset, see the module docstring).

    Raises:
      DataError: the data set is not prepared and cannot be prepared or downloaded.
    """
    raise NotImplementedError

  def augment(self, rng: jax.Array, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """The batch with random crops and flips applied to 'image' (inside the jitted step)."""
    images = preprocessing.augment(rng, batch['image'], self.config.random_crop_padding,
                                   self.config.random_flip)
    return {**batch, 'image': images}


# Data set name (`config.data.name`) -> source class.
REGISTRY: dict[str, type[Source]] = {}


def register(source_class: type[Source]) -> type[Source]:
  """Class decorator: makes every name in `source_class.names` a `config.data.name`."""
  for name in source_class.names:
    REGISTRY[name] = source_class
  return source_class


def get(data_config: ml_collections.ConfigDict) -> Source:
  """The validated source of `config.data`; ConfigError for an unknown name or a bad value."""
  name = data_config.get('name')
  if name not in REGISTRY:
    raise errors.ConfigError(f'config.data.name={name!r} is not supported; use one of '
                             f'{", ".join(REGISTRY)}.')
  return REGISTRY[name](data_config)


def require_fields(config: ml_collections.ConfigDict, names: Sequence[str]) -> None:
  for name in names:
    if name not in config:
      raise errors.ConfigError(
          f'config.data.{name} is missing; add it to the config (the fields are described in '
          'lpta/data/__init__.py).')


def require_bool(config: ml_collections.ConfigDict, name: str) -> None:
  if not isinstance(config[name], bool):
    raise errors.ConfigError(
        f'config.data.{name}={config[name]!r} must be True or False; fix it with '
        f'--config.data.{name}=True (or False).')


def require_int(config: ml_collections.ConfigDict, name: str, minimum: int) -> None:
  value = config[name]
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
    raise errors.ConfigError(
        f'config.data.{name}={value!r} must be an integer >= {minimum}; fix it with '
        f'--config.data.{name}=N.')


# The built-in sources register themselves on import.
from lpta.data import in_memory  # pylint: disable=g-import-not-at-top,wrong-import-position
from lpta.data import canvases  # pylint: disable=g-import-not-at-top,wrong-import-position
from lpta.data import streamed  # pylint: disable=g-import-not-at-top,wrong-import-position
from lpta.data import cub  # pylint: disable=g-import-not-at-top,wrong-import-position
