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

`config.data.name` picks the source; the fields every source reads are FIELDS below, and each
source declares its own (`Source.fields`); `default_config()` gives all of them, so that every
run's config has the same data fields. Registered sources: cifar10, cifar100, svhn_cropped,
fashion_mnist (held in host memory), translated_fashion_mnist and cluttered_fashion_mnist
(Fashion-MNIST on larger canvases, with object boxes: lpta.data.canvases), imagenet2012 and
stanford_dogs (streamed from disk by lpta.data.streamed), caltech_birds2011 (CUB-200-2011 cropped
to the birds' boxes and held in host memory, with boxes and segmentation masks: lpta.data.cub),
synthetic (random uint8 images and labels from a fixed seed). A data set that is not prepared
yet is built from the files in `manual_dir`, otherwise downloaded by TFDS; `fashion_mnist` is
built offline from the Debian package `dataset-fashion-mnist` when that is installed.
"""

from typing import Any, ClassVar

import jax
import ml_collections

from lpta import config_fields as cf
from lpta import errors
from lpta.data import preprocessing

EVAL_SPLITS = ('validation', 'test')  # in the order they are evaluated
# The fields of config.data that every source reads (besides `name`).
FIELDS = (
    cf.Field('data_dir', None, "TFDS data directory; None: $TFDS_DATA_DIR or "
             '~/tensorflow_datasets.', cf.optional(cf.STRING), kind=str),
    cf.Field('manual_dir', None, 'Folder of manually downloaded archives for offline '
             'preparation; None: <data_dir>/downloads/manual.', cf.optional(cf.STRING), kind=str),
    cf.Field('train_split', 'train', "The TFDS split to train on, or a slice of it for short "
             "runs, e.g. 'train[:15000]'.",
             cf.Check("must be the train split or a slice of it, e.g. 'train' or "
                      "'train[:15000]'",
                      lambda value: isinstance(value, str) and value.startswith('train'))),
    cf.Field('validation_split', 0, 'Examples at the end of train_split held out to rank the '
             "best checkpoints; 0: none (the papers' protocol: train on all of train, report the "
             'final test accuracy).', cf.integer(0)),
    cf.Field('zca', False, 'ZCA whitening fitted on the training split (after per-channel '
             'mean/std).', cf.BOOLEAN),
    cf.Field('zca_epsilon', 1e-2, 'Added to the covariance eigenvalues before inverting them.'),
    cf.Field('random_crop_padding', 4, 'Random crop after zero-padding by this many pixels; 0: '
             'no crop.', cf.integer(0)),
    cf.Field('random_flip', True, 'Random horizontal flips (off for digits).', cf.BOOLEAN),
    cf.Field('image_size', None, 'Side of the square images of a streamed data set (None: 224) '
             'and of caltech_birds2011 (None: 80); the others keep their size.', kind=int),
)


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

  def first_examples(self, count: int) -> dict[str, Any]:
    """The first n <= count test examples of this process (for figures): {'image': uint8 [n, H,
    W, C]}, and 'box' int32 [n, 4] where the source has object boxes."""
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
  # The fields of config.data this source reads besides FIELDS (e.g. the canvas size).
  fields: ClassVar[tuple[cf.Field, ...]] = ()

  def __init__(self, data_config: ml_collections.ConfigDict):
    # Checked against the fields' declarations, with the values of fields added since.
    self.config = cf.validated(data_config, FIELDS + self.fields, 'config.data',
                               owner=f'config.data.name={data_config.get("name")!r}')
    self.validate()

  def validate(self) -> None:
    """Raises ConfigError naming the field for a value that the fields' own checks accept but
    that does not fit the rest of `config.data`."""
    config = self.config
    if config.zca and not cf.POSITIVE_NUMBER.accepts(config.zca_epsilon):
      raise errors.ConfigError(
          f'config.data.zca_epsilon={config.zca_epsilon!r} must be a positive number when config.data.zca '
          'is set; use e.g. --config.data.zca_epsilon=0.01.')
    if self.streamed and (config.random_crop_padding or config.zca):
      raise errors.ConfigError(
          f'{config.name} is streamed with random-resized crops and mean/std normalisation; '
          'set --config.data.random_crop_padding=0 --config.data.zca=False.')
    if self.streamed or self.resized:
      if config.image_size is not None and not cf.integer(1).accepts(config.image_size):
        raise errors.ConfigError(f'config.data.image_size={config.image_size!r} '
                                 f'{cf.integer(1).refusal}, or None for the default.')
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


def default_config() -> ml_collections.ConfigDict:
  """config.data with every field of every source at its default (`name` unset)."""
  fields = {field.name: field for source in dict.fromkeys(REGISTRY.values())
            for field in FIELDS + source.fields}
  return cf.default_config(fields.values(), name=ml_collections.config_dict.placeholder(str))


def added_values() -> dict[str, Any]:
  """{'data.<field>': value} of the data fields that configs saved before them lack."""
  return cf.merge_added(*(cf.added_values('data', FIELDS + source.fields)
                          for source in REGISTRY.values()))


# The built-in sources register themselves on import.
from lpta.data import in_memory  # pylint: disable=g-import-not-at-top,wrong-import-position
from lpta.data import canvases  # pylint: disable=g-import-not-at-top,wrong-import-position
from lpta.data import streamed  # pylint: disable=g-import-not-at-top,wrong-import-position
from lpta.data import cub  # pylint: disable=g-import-not-at-top,wrong-import-position
