"""Small data sets held in host memory: CIFAR-10/100, SVHN, Fashion-MNIST (TFDS) and synthetic.

Every process reads the whole of `train_split` and the test split once as uint8 numpy arrays,
holds out the last `validation_split` training examples as the validation split, and fits the
normalisation statistics (and the optional ZCA matrix) on the rest, identically on every process
without any communication. It feeds its own slice of each global train batch, drawn the same way
on every process, and its own shard of the evaluation splits (lpta.data.batching). Batches are
cut deterministically, so training resumes at any step without replaying the input and does not
depend on the number of processes; crops and flips run inside the jitted train step.
"""

from collections.abc import Iterator
import dataclasses

from absl import logging
import numpy as np

from lpta import config_fields as cf
from lpta import data
from lpta import errors
from lpta.data import batching
from lpta.data import preprocessing
from lpta.data import tfds_preparation

_SYNTHETIC_SEED = 0
_READ_BATCH_SIZE = 1024  # Examples per tf.data batch when reading a split into numpy.
_STATS_CHUNK_SIZE = 1024  # Examples per chunk when accumulating statistics in float64.

Arrays = dict[str, np.ndarray]  # {'image': uint8 [N, H, W, C], 'label': int32 [N], ...}


@dataclasses.dataclass(frozen=True)
class Dataset(data.Dataset):
  """One process's shards of a data set held in memory.

  Attributes:
    shards: {split: arrays} of this process: 'train' (the whole split, on every process),
      'test' and, if there is one, 'validation' (this process's shard); each
      {'image': uint8 [n, H, W, C], 'label': int32 [n]}.
    num_examples: {split: examples over all processes}.
    class_names: one name per class.
    statistics: the normalisation fitted on the whole train split (numpy arrays).
  """
  shards: dict[str, Arrays]
  num_examples: dict[str, int]
  class_names: tuple[str, ...]
  statistics: preprocessing.Normalisation

  @property
  def image_shape(self) -> tuple[int, int, int]:
    """(H, W, C) of every image."""
    return self.shards['train']['image'].shape[1:]

  def train_batches(self, local_batch_size: int, seed: int,
                    start_step: int = 0) -> Iterator[Arrays]:
    """This process's part of each shuffled global batch from global step `start_step`
    (batching.train_batches)."""
    return batching.train_batches(self.shards['train'], local_batch_size, seed, start_step)

  def eval_batches(self, split: str, local_batch_size: int) -> Iterator[Arrays]:
    """The shard of `split` once, in padded and masked batches; as many on every process."""
    num_batches = batching.num_eval_batches(self.num_examples[split], local_batch_size)
    return batching.eval_batches(self.shards[split], local_batch_size, num_batches)

  def first_examples(self, count: int) -> Arrays:
    """The first test images of this process's shard, and their boxes where there are."""
    test = self.shards['test']
    return {name: test[name][:count] for name in ('image', 'box') if name in test}


class InMemorySource(data.Source):
  """A source whose splits fit in host memory; subclasses read the two splits (`read`)."""

  def read(self) -> tuple[Arrays, Arrays, tuple[str, ...]]:
    """(all of `train_split`, all of the test split, class names)."""
    raise NotImplementedError

  def load(self) -> Dataset:
    """Reads both splits, holds out the validation split and fits the statistics.

    Raises:
      ConfigError: the validation split leaves no training example.
      DataError: the data set is not prepared and cannot be prepared or downloaded.
    """
    train, test, class_names = self.read()
    splits = {'train': train, 'test': test}
    held_out = self.config.validation_split
    if held_out:
      if held_out >= len(train['label']):
        raise errors.ConfigError(
            f'config.data.validation_split={held_out} leaves no training example of the '
            f'{len(train["label"])} in {self.config.train_split}; hold out fewer.')
      splits['train'] = {name: array[:-held_out] for name, array in train.items()}
      splits['validation'] = {name: array[-held_out:] for name, array in train.items()}
    statistics = fit_statistics(splits['train']['image'], self.config)
    # Every process keeps the whole train split (it draws its part of each global batch from
    # it, batching.train_batches) and its own shard of the evaluation splits.
    shards = {split: arrays if split == 'train' else
              {name: array[batching.process_shard(len(arrays['label']))]
               for name, array in arrays.items()}
              for split, arrays in splits.items()}
    dataset = Dataset(shards=shards, class_names=class_names, statistics=statistics,
                      num_examples={split: len(arrays['label'])
                                    for split, arrays in splits.items()})
    logging.info('Loaded %s: %s examples (this process: %s), image shape %s, mean %s, std %s.',
                 self.config.name, dataset.num_examples,
                 {split: len(shard['label']) for split, shard in shards.items()},
                 dataset.image_shape, statistics.mean, statistics.std)
    return dataset


# (image shape, number of classes) of the TFDS data sets held in memory.
TFDS_SHAPES = {
    'cifar10': ((32, 32, 3), 10),
    'cifar100': ((32, 32, 3), 100),
    'svhn_cropped': ((32, 32, 3), 10),
    'fashion_mnist': ((28, 28, 1), 10),
}


@data.register
class TfdsSource(InMemorySource):
  """A TFDS image-classification data set, prepared offline if needed (tfds_preparation)."""
  names = tuple(TFDS_SHAPES)

  @property
  def image_shape(self):
    return TFDS_SHAPES[self.config.name][0]

  @property
  def num_classes(self):
    return TFDS_SHAPES[self.config.name][1]

  def read(self):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    builder = tfds_preparation.prepared_builder(self.config)
    train, test = tfds.load(self.config.name, split=[self.config.train_split, 'test'],
                            data_dir=self.config.data_dir, batch_size=_READ_BATCH_SIZE,
                            as_supervised=True, download=False)
    class_names = tuple(builder.info.features['label'].names)
    return _as_numpy(train), _as_numpy(test), class_names


def _as_numpy(split) -> Arrays:
  """{'image': uint8 [N, H, W, C], 'label': int32 [N]} from a batched (image, label) split."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  batches = list(tfds.as_numpy(split))
  return {'image': np.concatenate([images for images, _ in batches]),
          'label': np.concatenate([labels for _, labels in batches]).astype(np.int32)}


@data.register
class SyntheticSource(InMemorySource):
  """Random uint8 images and labels from a fixed seed (benchmarks and tests); no TensorFlow."""
  names = ('synthetic',)
  fields = (
      cf.Field('synthetic_image_shape', (32, 32, 3), '(height, width, channels) of its images.',
               cf.tuple_of(cf.POSITIVE_INTEGER, 'positive integers (height, width, channels), '
                           'e.g. (32, 32, 3)', length=3)),
      cf.Field('synthetic_num_classes', 100, 'Its classes.', cf.integer(1)),
      cf.Field('synthetic_num_train', 50_000, 'Its training examples (all processes).',
               cf.integer(1)),
      cf.Field('synthetic_num_test', 10_000, 'Its test examples (all processes).',
               cf.integer(1)),
  )

  def validate(self):
    super().validate()
    config = self.config
    if config.train_split != 'train':
      raise errors.ConfigError("config.data.train_split must be 'train' for synthetic data; set "
                               'config.data.synthetic_num_train instead.')

  @property
  def image_shape(self):
    return tuple(self.config.synthetic_image_shape)

  @property
  def num_classes(self):
    return self.config.synthetic_num_classes

  def read(self):
    rng = np.random.default_rng(_SYNTHETIC_SEED)
    splits = []
    for num_examples in (self.config.synthetic_num_train, self.config.synthetic_num_test):
      splits.append({
          'image': rng.integers(0, 256, (num_examples, *self.image_shape), dtype=np.uint8),
          'label': rng.integers(0, self.num_classes, num_examples, dtype=np.int32)})
    return (*splits, tuple(f'class {label}' for label in range(self.num_classes)))


def fit_statistics(train_images: np.ndarray, config) -> preprocessing.Normalisation:
  """Per-channel mean and std of the train images and, with `config.zca`, the ZCA matrix."""
  mean, std = channel_mean_std(train_images)
  zca = zca_matrix(train_images, mean, std, config.zca_epsilon) if config.zca else None
  return preprocessing.Normalisation(mean, std, zca)


def _chunks(images: np.ndarray) -> Iterator[np.ndarray]:
  """Float64 chunks [n, H, W, C] of the images scaled to [0, 1]."""
  for start in range(0, len(images), _STATS_CHUNK_SIZE):
    yield images[start:start + _STATS_CHUNK_SIZE].astype(np.float64) / 255


def channel_mean_std(train_images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and std, float32 [C], of the train images scaled to [0, 1]."""
  channels = train_images.shape[-1]
  total, total_sq = np.zeros(channels), np.zeros(channels)
  for chunk in _chunks(train_images):
    total += chunk.sum((0, 1, 2))
    total_sq += np.square(chunk).sum((0, 1, 2))
  num_pixels = len(train_images) * np.prod(train_images.shape[1:3])
  mean = total / num_pixels
  variance = np.maximum(total_sq / num_pixels - np.square(mean), 0)
  return mean.astype(np.float32), np.sqrt(variance).astype(np.float32)


def zca_matrix(train_images: np.ndarray, mean: np.ndarray, std: np.ndarray,
               epsilon: float) -> np.ndarray:
  """ZCA matrix float32 [D, D], D = H*W*C, of the mean/std-normalised train images.

  W = U diag(1 / sqrt(S + epsilon)) U^T, where U diag(S) U^T is the covariance of the flattened
  normalised images.

  Args:
    train_images: uint8 [N, H, W, C].
    mean: float32 [C], from `channel_mean_std`.
    std: float32 [C].
    epsilon: regulariser added to the eigenvalues.

  Returns:
    The symmetric whitening matrix.
  """
  dim = int(np.prod(train_images.shape[1:]))
  total, total_outer = np.zeros(dim), np.zeros((dim, dim))
  for chunk in _chunks(train_images):
    flat = ((chunk - mean) / std).reshape(len(chunk), dim)
    total += flat.sum(0)
    total_outer += flat.T @ flat
  pixel_mean = total / len(train_images)
  covariance = total_outer / len(train_images) - np.outer(pixel_mean, pixel_mean)
  eigenvalues, eigenvectors = np.linalg.eigh(covariance)
  scales = 1 / np.sqrt(np.maximum(eigenvalues, 0) + epsilon)
  return ((eigenvectors * scales) @ eigenvectors.T).astype(np.float32)
