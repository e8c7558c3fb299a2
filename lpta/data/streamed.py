"""ImageNet and Stanford Dogs streamed from TFDS records by tf.data: random crops to train, centre
crops to test.

ImageNet does not fit in host memory, so each process reads its own shard of the prepared TFDS
records while training, decodes only the crop it needs, and hands uint8 batches to the train
loop; random flips and normalisation happen inside the jitted step, as for the small data sets
(lpta.data.in_memory). A StreamedDataset has the same methods as in_memory.Dataset.

Preprocessing (the PyTorch recipe of szagoruyko/attention-transfer's imagenet.py), for
`size` = config.data.image_size (224 by default):
  train: a random crop covering 8% to 100% of the image with aspect ratio in [3/4, 4/3] (the
    whole image if 10 draws fail), resized to size × size (bilinear, antialiased);
  evaluation: the central square of side min(H, W) · 224/256, resized to size × size (the
    same pixels as resizing the short side to 256 and cropping 224);
  normalisation: the usual ImageNet channel mean and std (`MEAN`, `STD`), not fitted.
Stanford Dogs (120 breeds, 12,000 train and 8,580 test images of many sizes) is cut into squares,
as the fine-grained glimpse model reads it (Visual-Attention-Pytorch's dataset.py and
main.py): train a square of side min(H, W) at a random offset, evaluation the central one, both
resized to size × size; the ImageNet statistics, which its ImageNet-pretrained trunks expect.

Training is exactly resumable: epoch e reads the shard's files and shuffles its examples with
seeds drawn from [seed, e], and example i of the epoch is cropped with the stateless seed
(epoch seed, i). Resuming at a step inside an epoch reads (without decoding) the examples
before it again; nothing else is repeated.

The test split of ImageNet has no labels, so lpta's 'test' split is ImageNet's `validation`
(reported as test_*); Stanford Dogs' is its `test`. With `config.data.validation_split` = n, lpta's 'validation' split is the
last n examples of `train_split`, which then trains on the others.
"""

from collections.abc import Iterator
import dataclasses
import itertools

from absl import logging
import ml_collections
import numpy as np

from lpta import data
from lpta import errors
from lpta.data import batching
from lpta.data import preprocessing
from lpta.data import tfds_preparation

# The TFDS split that is lpta's 'test' split (ImageNet's test split has no labels).
TEST_SPLITS = {'imagenet2012': 'validation', 'stanford_dogs': 'test'}
# (default crop shape, number of classes) of each streamed data set.
SHAPES = {'imagenet2012': ((224, 224, 3), 1000), 'stanford_dogs': ((224, 224, 3), 120)}
# ImageNet channel statistics of images scaled to [0, 1].
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)

_CROP_AREA_RANGE = (0.08, 1.0)  # fraction of the image area covered by a train crop
_CROP_ASPECT_RATIO_RANGE = (3 / 4, 4 / 3)
_CROP_ATTEMPTS = 10
_EVAL_CROP_FRACTION = 224 / 256  # side of the evaluation crop / short side of the image
_SHUFFLE_BUFFER = 10_000  # encoded examples (~110 KB each for ImageNet) per process


@dataclasses.dataclass(frozen=True)
class StreamedDataset(data.Dataset):
  """One process's view of a streamed data set.

  Attributes:
    config: the `config.data` sub-config.
    image_shape: (size, size, 3) of every batch image.
    class_names: one name per class.
    tfds_splits: {split: TFDS split string} of lpta's 'train', 'test' and maybe 'validation'.
    num_examples: {split: examples over all processes} (train: equal shards).
    num_local_examples: {split: examples of this process's shard}.
  """
  config: ml_collections.ConfigDict = dataclasses.field(repr=False)
  image_shape: tuple[int, int, int]
  class_names: tuple[str, ...]
  tfds_splits: dict[str, str]
  num_examples: dict[str, int]
  num_local_examples: dict[str, int]
  # ImageNet's channel statistics, fixed rather than fitted; no whitening.
  statistics = preprocessing.Normalisation(MEAN, STD)

  def train_batches(self, local_batch_size: int, seed: int,
                    start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Infinite batches of random-resized crops from global step `start_step` on.

    Step s is batch s % steps_per_epoch of epoch s // steps_per_epoch, whatever step the
    iterator started at, so a resumed run sees the batches of an uninterrupted one.

    Args:
      local_batch_size: examples per batch on this process (b).
      seed: non-negative shuffling and cropping seed.
      start_step: global step of the first batch.

    Returns:
      An iterator of dicts with `image` uint8 [b, size, size, 3] and `label` int32 [b].

    Raises:
      ConfigError: the shard holds fewer examples than one batch.
    """
    steps_per_epoch = batching.local_steps_per_epoch(self.num_local_examples['train'],
                                                     local_batch_size, start_step)
    return self._epochs(local_batch_size, seed, steps_per_epoch, start_step)

  def _epochs(self, local_batch_size, seed, steps_per_epoch, start_step):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    first_epoch, first_step = divmod(start_step, steps_per_epoch)
    for epoch in itertools.count(first_epoch):
      examples = self._train_epoch(_epoch_seed(seed, epoch), local_batch_size, steps_per_epoch,
                                   first_step if epoch == first_epoch else 0)
      yield from tfds.as_numpy(examples)

  def _train_epoch(self, epoch_seed: int, local_batch_size: int, steps_per_epoch: int,
                   first_step: int):
    """tf.data batches of steps [first_step, steps_per_epoch) of one epoch."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    size = self.image_shape[0]
    examples = read_shard(self.config, self.tfds_splits['train'], drop_remainder=True,
                          shuffle_seed=epoch_seed)
    examples = examples.shuffle(_SHUFFLE_BUFFER, seed=epoch_seed)
    examples = examples.take(steps_per_epoch * local_batch_size)
    examples = examples.skip(first_step * local_batch_size)
    examples = examples.enumerate(start=first_step * local_batch_size)

    train_crop = TRAIN_CROPS[self.config.name]

    def preprocess(index, example):
      crop_seed = tf.stack([tf.constant(epoch_seed, tf.int64), index])
      return {'image': train_crop(example['image'], crop_seed, size),
              'label': tf.cast(example['label'], tf.int32)}

    examples = examples.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
    return examples.batch(local_batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)

  def eval_batches(self, split: str, local_batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """The shard of `split` once, centre-cropped, in padded and masked batches; as many on
    every process.

    Yields:
      Dicts with `image` uint8 [b, size, size, 3], `label` int32 [b] and `mask` float32 [b].
    """
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    num_batches = batching.num_eval_batches(self.num_examples[split], local_batch_size)
    batches = tfds.as_numpy(self._eval_examples(split).batch(local_batch_size).prefetch(
        tf.data.AUTOTUNE))
    padding = {'image': np.zeros((0, *self.image_shape), np.uint8),
               'label': np.zeros(0, np.int32)}
    for batch in itertools.islice(itertools.chain(batches, itertools.repeat(padding)),
                                  num_batches):
      yield batching.padded_batch(batch, local_batch_size)

  def first_examples(self, count: int) -> dict[str, np.ndarray]:
    """{'image': uint8 [n, size, size, 3]}: the first n = min(count, shard size) test crops."""
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    if count == 0:
      return {'image': np.zeros((0, *self.image_shape), np.uint8)}
    batch = next(iter(tfds.as_numpy(self._eval_examples('test').batch(count))))
    return {'image': batch['image']}

  def _eval_examples(self, split: str):
    """tf.data examples of this process's shard of `split`, centre-cropped, in order."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    size, fraction = self.image_shape[0], EVAL_CROP_FRACTIONS[self.config.name]
    examples = read_shard(self.config, self.tfds_splits[split], drop_remainder=False)
    return examples.map(lambda example: {'image': centre_crop(example['image'], size, fraction),
                                         'label': tf.cast(example['label'], tf.int32)},
                        num_parallel_calls=tf.data.AUTOTUNE)


def read_shard(config: ml_collections.ConfigDict, split: str, drop_remainder: bool,
               shuffle_seed: int | None = None):
  """tf.data examples of this process's part of `split`, images as encoded bytes.

  Files are read in order, or shuffled with `shuffle_seed`; every process gets an equal part
  with `drop_remainder`, else the parts differ by at most one example.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  return tfds.load(
      config.name, split=tfds.split_for_jax_process(split, drop_remainder=drop_remainder),
      data_dir=config.data_dir,
      # Only image (left encoded: the crop decodes just its window) and label are read.
      decoders=tfds.decode.PartialDecoding({'image': True, 'label': True},
                                           decoders={'image': tfds.decode.SkipDecoding()}),
      shuffle_files=shuffle_seed is not None,
      read_config=tfds.ReadConfig(shuffle_seed=shuffle_seed, try_autocache=False),
      download=False)


def _epoch_seed(seed: int, epoch: int) -> int:
  """The file-order, shuffle and crop seed of one epoch, as in batching.train_batches."""
  return int(np.random.default_rng([seed, epoch]).integers(2**31))


def random_resized_crop(image_bytes, seed, size: int):
  """Decodes a random crop of an image (a JPEG: only the crop) and resizes it: uint8 [size,
  size, 3].

  The crop covers a fraction of the image area drawn from `_CROP_AREA_RANGE` with an aspect
  ratio from `_CROP_ASPECT_RATIO_RANGE`; if no draw fits, the whole image.

  Args:
    image_bytes: scalar tf.string, an encoded image.
    seed: int64 [2], the stateless random seed.
    size: side of the output.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  whole_image = tf.constant([0., 0., 1., 1.], tf.float32, [1, 1, 4])
  offset, crop_shape, _ = tf.image.stateless_sample_distorted_bounding_box(
      encoded_image_shape(image_bytes), whole_image, seed=seed, min_object_covered=0.,
      aspect_ratio_range=_CROP_ASPECT_RATIO_RANGE, area_range=_CROP_AREA_RANGE,
      max_attempts=_CROP_ATTEMPTS, use_image_if_no_bounding_boxes=True)
  return _decode_crop_and_resize(image_bytes, offset[:2], crop_shape[:2], size)


def random_square_crop(image_bytes, seed, size: int):
  """Decodes the square of side min(H, W) at a random offset of an encoded image, resized: uint8 [size,
  size, 3]. seed: int64 [2], the stateless random seed."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  image_shape = encoded_image_shape(image_bytes)[:2]
  side = tf.reduce_min(image_shape)
  offset = tf.random.stateless_uniform([2], seed, minval=0, maxval=tf.int32.max,
                                       dtype=tf.int32) % (image_shape - side + 1)
  return _decode_crop_and_resize(image_bytes, offset, tf.stack([side, side]), size)


def centre_crop(image_bytes, size: int, fraction: float = _EVAL_CROP_FRACTION):
  """Decodes the central square of side `fraction` · min(H, W) of an encoded image and resizes it.

  Args:
    image_bytes: scalar tf.string, an encoded image.
    size: side of the output.
    fraction: of the short side (ImageNet's evaluation: 224/256).

  Returns:
    uint8 [size, size, 3].
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  image_shape = encoded_image_shape(image_bytes)[:2]
  side = tf.cast(tf.cast(tf.reduce_min(image_shape), tf.float32) * fraction, tf.int32)
  offset = (image_shape - side) // 2
  return _decode_crop_and_resize(image_bytes, offset, tf.stack([side, side]), size)


# How each streamed data set crops its train and evaluation images.
TRAIN_CROPS = {'imagenet2012': random_resized_crop, 'stanford_dogs': random_square_crop}
EVAL_CROP_FRACTIONS = {'imagenet2012': _EVAL_CROP_FRACTION, 'stanford_dogs': 1.}


def _decode_whole(image_bytes):
  """uint8 [H, W, 3] from an encoded PNG, GIF or BMP (or JPEG)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.decode_image(image_bytes, channels=3, expand_animations=False)


def encoded_image_shape(image_bytes):
  """int32 [3] (H, W, C) of an encoded image, read from a JPEG's header without decoding it."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.cond(tf.io.is_jpeg(image_bytes), lambda: tf.image.extract_jpeg_shape(image_bytes),
                 lambda: tf.shape(_decode_whole(image_bytes)))


def _decode_crop_and_resize(image_bytes, offset, crop_shape, size: int):
  """Decodes the window (offset, crop_shape) of an image, resized: uint8 [size, size, 3]. Of a
  JPEG only the window is decoded."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  window = tf.concat([offset, crop_shape], axis=0)
  image = tf.cond(
      tf.io.is_jpeg(image_bytes),
      lambda: tf.image.decode_and_crop_jpeg(image_bytes, window, channels=3),
      lambda: tf.image.crop_to_bounding_box(_decode_whole(image_bytes), offset[0], offset[1],
                                            crop_shape[0], crop_shape[1]))
  return resize(image, size)


def resize(image, size: int):
  """uint8 [size, size, C]: an image [H, W, C] resized (bilinear, antialiased) and rounded."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  image = tf.image.resize(image, (size, size), method='bilinear', antialias=True)
  return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


@data.register
class StreamedSource(data.Source):
  """A TFDS data set too large for host memory, streamed from its prepared records."""
  names = tuple(SHAPES)
  streamed = True

  @property
  def image_shape(self):
    (height, width, channels), _ = SHAPES[self.config.name]
    if self.config.image_size:
      height = width = self.config.image_size
    return height, width, channels

  @property
  def num_classes(self):
    return SHAPES[self.config.name][1]

  def load(self) -> StreamedDataset:
    """Prepares the data set if needed and counts each process's examples.

    Raises:
      DataError: the data set is not prepared and cannot be prepared (for ImageNet: the
        original ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar are not in manual_dir).
    """
    builder = tfds_preparation.prepared_builder(self.config)
    tfds_splits = {'train': self.config.train_split, 'test': TEST_SPLITS[self.config.name]}
    if self.config.validation_split:
      tfds_splits['train'], tfds_splits['validation'] = _hold_out(
          builder, self.config.train_split, self.config.validation_split)
    local_counts = {
        split: int(read_shard(self.config, tfds_split, split == 'train').cardinality())
        for split, tfds_split in tfds_splits.items()}
    counts = batching.sum_over_processes(local_counts)
    dataset = StreamedDataset(
        config=self.config, image_shape=self.image_shape,
        class_names=tuple(builder.info.features['label'].names), tfds_splits=tfds_splits,
        num_examples={split: int(count) for split, count in counts.items()},
        num_local_examples=local_counts)
    logging.info('Streaming %s: %s examples (this process: %s) from TFDS splits %s, %s crops.',
                 self.config.name, dataset.num_examples, local_counts, tfds_splits,
                 self.image_shape)
    return dataset


def _hold_out(builder, train_split: str, count: int) -> tuple[str, str]:
  """(the TFDS split of train_split but its last `count` examples, the split of those)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  splits = builder.info.splits
  (absolute,) = tfds.core.ReadInstruction.from_spec(train_split).to_absolute(splits)
  name = absolute.splitname
  start = absolute.from_ or 0
  end = splits[name].num_examples if absolute.to is None else absolute.to
  if count >= end - start:
    raise errors.ConfigError(
        f'config.data.validation_split={count} leaves no training example of the '
        f'{end - start} in {train_split}; hold out fewer.')
  return f'{name}[{start}:{end - count}]', f'{name}[{end - count}:{end}]'
