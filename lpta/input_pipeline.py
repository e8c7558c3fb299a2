"""Image data sets from TFDS: the config fields, their validation, and the in-memory pipeline.

Small data sets (CIFAR, SVHN, Fashion-MNIST) are held in host memory, batched with numpy and
augmented inside the train step; ImageNet is streamed from disk by lpta.streaming_input. Both
kinds of data set offer the same methods to the train loop (`train_batches`, `eval_batches`,
`first_test_images`).

Each process loads its own shard of the train and test splits once as uint8 numpy arrays
(`load`). `train_batches` and `eval_batches` cut them into batches deterministically, so training
resumes at any step without replaying the input. `augment` and `normalise` are jax functions meant
to run inside the jitted train/eval step, driven by a jax PRNG key. Normalisation statistics (and
the optional ZCA whitening matrix) are fitted on the training split only and are identical on
every process.

TensorFlow and tensorflow_datasets are imported only when a TFDS data set is loaded; the
`synthetic` data set and everything else in this module work without them.

Fields of `config.data` (an `ml_collections.ConfigDict`):
  name: one of `SUPPORTED`. `synthetic` is random uint8 images and labels from a fixed seed.
    Those in `STREAMED` (imagenet2012) are read from disk during training by
    lpta.streaming_input, with their own crops; they take `random_crop_padding=0`, `zca=False`.
  data_dir: TFDS data directory; None uses TFDS's default (`$TFDS_DATA_DIR` or
    `~/tensorflow_datasets`).
  manual_dir: folder holding manually downloaded source files; None uses
    `<data_dir>/downloads/manual`. A data set that is not prepared yet is built from the files
    found there, otherwise downloaded by TFDS. `fashion_mnist` is built offline from the Debian
    package `dataset-fashion-mnist` when that is installed.
  zca: whether to fit a ZCA whitening matrix (`Dataset.zca_matrix`).
  zca_epsilon: added to the covariance eigenvalues before inverting them (e.g. 1e-2); must be
    positive when `zca` is set.
  random_crop_padding: zero padding in pixels on each side before the random crop (4 for CIFAR,
    0 for no crop).
  random_flip: whether to flip images horizontally at random (False for digits).
  image_size: side of the square images of a streamed data set (None: 224 for ImageNet); must
    be None for the others, whose images keep their size.
  train_split: the TFDS split to train on: 'train', or a subset such as 'train[:15000]' for
    short runs (statistics are then fitted on that subset). Only 'train' for `synthetic`.
  synthetic_image_shape: (height, width, channels) of `synthetic` images.
  synthetic_num_classes: number of `synthetic` classes.
  synthetic_num_train: number of `synthetic` train examples (all processes together).
  synthetic_num_test: number of `synthetic` test examples (all processes together).
"""

from collections.abc import Iterator, Sequence
import dataclasses
import os

from absl import logging
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np

from lpta import errors

SUPPORTED = ('cifar10', 'cifar100', 'svhn_cropped', 'fashion_mnist', 'imagenet2012', 'synthetic')
# Data sets too large for host memory, streamed by lpta.streaming_input.
STREAMED = ('imagenet2012',)
# (image shape, number of classes) of each TFDS data set, known without loading it; for the
# streamed ones, the default size of their crops.
SHAPES = {
    'cifar10': ((32, 32, 3), 10),
    'cifar100': ((32, 32, 3), 100),
    'svhn_cropped': ((32, 32, 3), 10),
    'fashion_mnist': ((28, 28, 1), 10),
    'imagenet2012': ((224, 224, 3), 1000),
}

# Where the Debian package `dataset-fashion-mnist` installs the original Fashion-MNIST files.
DEBIAN_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist'

_SYNTHETIC_SEED = 0
_READ_BATCH_SIZE = 1024  # Examples per tf.data batch when reading a split into numpy.
_STATS_CHUNK_SIZE = 1024  # Examples per chunk when accumulating statistics in float64.
_NETWORK_TIMEOUT_S = 10  # How long to wait for a download server before giving up.


def image_shape_and_classes(config: ml_collections.ConfigDict) -> tuple[tuple[int, ...], int]:
  """(image shape (H, W, C), number of classes) of `config.data`, without loading anything."""
  if config.name == 'synthetic':
    return tuple(config.synthetic_image_shape), config.synthetic_num_classes
  (height, width, channels), num_classes = SHAPES[config.name]
  if config.name in STREAMED and config.get('image_size'):
    height = width = config.image_size
  return (height, width, channels), num_classes


@dataclasses.dataclass(frozen=True)
class Dataset:
  """One process's shard of a data set, with statistics fitted on the whole train split.

  Attributes:
    train_images: uint8 [N_train_local, H, W, C], this process's shard of the train split.
    train_labels: int32 [N_train_local].
    test_images: uint8 [N_test_local, H, W, C], this process's shard of the test split.
    test_labels: int32 [N_test_local].
    num_classes: number of classes.
    num_train_examples: train examples over all processes.
    num_test_examples: test examples over all processes.
    mean: float32 [C], per-channel mean of the train images scaled to [0, 1].
    std: float32 [C], per-channel standard deviation of the train images scaled to [0, 1].
    zca_matrix: float32 [H*W*C, H*W*C] whitening matrix applied to mean/std-normalised flattened
      images, or None when `config.zca` is off.
  """
  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  num_classes: int
  num_train_examples: int
  num_test_examples: int
  mean: np.ndarray
  std: np.ndarray
  zca_matrix: np.ndarray | None

  @property
  def image_shape(self) -> tuple[int, int, int]:
    """(H, W, C) of every image."""
    return self.train_images.shape[1:]

  def train_batches(self, local_batch_size: int, seed: int,
                    start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Shuffled batches of the train shard from global step `start_step` (`train_batches`)."""
    return train_batches(self.train_images, self.train_labels, local_batch_size, seed,
                         start_step)

  def eval_batches(self, local_batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """The test shard once, in padded and masked batches; as many on every process."""
    num_batches = num_eval_batches(len(self.test_labels), local_batch_size)
    return eval_batches(self.test_images, self.test_labels, local_batch_size, num_batches)

  def first_test_images(self, count: int) -> np.ndarray:
    """uint8 [count, H, W, C]: the first test images of this process's shard."""
    return self.test_images[:count]


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError if `config` (the `config.data` sub-config) has a missing or bad value."""
  _require_fields(config, ('name', 'data_dir', 'manual_dir', 'zca', 'zca_epsilon',
                           'random_crop_padding', 'random_flip', 'image_size', 'train_split'))
  if config.name not in SUPPORTED:
    raise errors.ConfigError(
        f'config.data.name={config.name!r} is not supported; use one of {", ".join(SUPPORTED)}.')
  if config.name in STREAMED:
    _validate_streamed_config(config)
  elif config.image_size is not None:
    raise errors.ConfigError(
        f'config.data.image_size={config.image_size!r} only applies to streamed data sets '
        f'({", ".join(STREAMED)}); {config.name} keeps its image size, so drop the override.')
  _require_bool(config, 'zca')
  _require_bool(config, 'random_flip')
  _require_int(config, 'random_crop_padding', minimum=0)
  epsilon = config.zca_epsilon
  if config.zca and (isinstance(epsilon, bool) or not isinstance(epsilon, (int, float))
                     or epsilon <= 0):
    raise errors.ConfigError(
        f'config.data.zca_epsilon={epsilon!r} must be a positive number when config.data.zca is '
        'set; use e.g. --config.data.zca_epsilon=0.01.')
  if not isinstance(config.train_split, str) or not config.train_split.startswith('train'):
    raise errors.ConfigError(
        f'config.data.train_split={config.train_split!r} must be the train split or a slice of '
        "it, e.g. 'train' or 'train[:15000]'.")
  if config.name == 'synthetic':
    if config.train_split != 'train':
      raise errors.ConfigError("config.data.train_split must be 'train' for synthetic data; set "
                               'config.data.synthetic_num_train instead.')
    _validate_synthetic_config(config)


def _require_fields(config: ml_collections.ConfigDict, names: Sequence[str]) -> None:
  for name in names:
    if name not in config:
      raise errors.ConfigError(
          f'config.data.{name} is missing; add it to the config (the fields are described in '
          'lpta/input_pipeline.py).')


def _require_bool(config: ml_collections.ConfigDict, name: str) -> None:
  if not isinstance(config[name], bool):
    raise errors.ConfigError(
        f'config.data.{name}={config[name]!r} must be True or False; fix it with '
        f'--config.data.{name}=True (or False).')


def _require_int(config: ml_collections.ConfigDict, name: str, minimum: int) -> None:
  value = config[name]
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
    raise errors.ConfigError(
        f'config.data.{name}={value!r} must be an integer >= {minimum}; fix it with '
        f'--config.data.{name}=N.')


def _validate_streamed_config(config: ml_collections.ConfigDict) -> None:
  """A streamed data set draws its own crops on the host and has no ZCA."""
  if config.random_crop_padding or config.zca:
    raise errors.ConfigError(
        f'{config.name} is streamed with random-resized crops and mean/std normalisation; set '
        '--config.data.random_crop_padding=0 --config.data.zca=False.')
  if config.image_size is not None:
    _require_int(config, 'image_size', minimum=1)


def _validate_synthetic_config(config: ml_collections.ConfigDict) -> None:
  names = ('synthetic_image_shape', 'synthetic_num_classes', 'synthetic_num_train',
           'synthetic_num_test')
  _require_fields(config, names)
  shape = tuple(config.synthetic_image_shape)
  if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
    raise errors.ConfigError(
        f'config.data.synthetic_image_shape={shape} must be three positive integers '
        '(height, width, channels), e.g. (32, 32, 3).')
  for name in names[1:]:
    _require_int(config, name, minimum=1)


def load(config: ml_collections.ConfigDict) -> Dataset:
  """Loads this process's shard of both splits and fits the statistics on the train split.

  The train split is cut into equal shards (dropping at most `process_count - 1` examples) so
  every process has the same number of steps per epoch; the test split is cut without dropping
  anything, so every test example is evaluated exactly once.

  Args:
    config: the `config.data` sub-config (fields in the module docstring).

  Returns:
    The Dataset; statistics are identical on every process.

  Raises:
    ConfigError: a config value is invalid.
    DataError: the data set is not prepared and cannot be prepared or downloaded.
  """
  validate_config(config)
  if config.name in STREAMED:
    raise ValueError(f'{config.name} does not fit in memory; load it with lpta.streaming_input '
                     '(lpta.train.load_dataset picks the right loader).')
  if config.name == 'synthetic':
    splits, num_classes = _synthetic_splits(config), config.synthetic_num_classes
  else:
    splits, num_classes = _tfds_splits(config)
  train_images, train_labels, test_images, test_labels = splits
  counts = sum_over_processes(np.array([len(train_images), len(test_images)], np.int64))
  mean, std = _channel_mean_std(train_images)
  zca_matrix = _zca_matrix(train_images, mean, std, config.zca_epsilon) if config.zca else None
  dataset = Dataset(
      train_images=train_images, train_labels=train_labels, test_images=test_images,
      test_labels=test_labels, num_classes=num_classes, num_train_examples=int(counts[0]),
      num_test_examples=int(counts[1]), mean=mean, std=std, zca_matrix=zca_matrix)
  logging.info('Loaded %s: %d train / %d test examples (%d / %d on this process), image shape %s,'
               ' mean %s, std %s.', config.name, dataset.num_train_examples,
               dataset.num_test_examples, len(train_images), len(test_images),
               dataset.image_shape, mean, std)
  return dataset


def _synthetic_splits(
    config: ml_collections.ConfigDict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Random uint8 images [N, H, W, C] and int32 labels [N] for train then test, this shard."""
  rng = np.random.default_rng(_SYNTHETIC_SEED)
  shape = tuple(config.synthetic_image_shape)
  splits = []
  for num_examples, drop_remainder in ((config.synthetic_num_train, True),
                                       (config.synthetic_num_test, False)):
    images = rng.integers(0, 256, (num_examples, *shape), dtype=np.uint8)
    labels = rng.integers(0, config.synthetic_num_classes, num_examples, dtype=np.int32)
    shard = _process_shard(num_examples, drop_remainder)
    splits += [images[shard], labels[shard]]
  return tuple(splits)


def _process_shard(num_examples: int, drop_remainder: bool) -> slice:
  """This process's contiguous slice of `num_examples`: equal sizes with `drop_remainder`."""
  index, count = jax.process_index(), jax.process_count()
  if drop_remainder:
    size = num_examples // count
    return slice(index * size, (index + 1) * size)
  return slice(num_examples * index // count, num_examples * (index + 1) // count)


def _tfds_splits(
    config: ml_collections.ConfigDict
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], int]:
  """Prepares the TFDS data set if needed and reads this process's shards of train and test."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  builder = prepared_builder(config)
  train, test = tfds.load(
      config.name,
      split=[tfds.split_for_jax_process(config.train_split, drop_remainder=True),
             tfds.split_for_jax_process('test')],
      data_dir=config.data_dir, batch_size=_READ_BATCH_SIZE, as_supervised=True, download=False)
  num_classes = builder.info.features['label'].num_classes
  return (*_as_numpy(train), *_as_numpy(test)), num_classes


def _as_numpy(split) -> tuple[np.ndarray, np.ndarray]:
  """uint8 images [N, H, W, C] and int32 labels [N] from a batched (image, label) tf.data split."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  batches = list(tfds.as_numpy(split))
  images = np.concatenate([images for images, _ in batches])
  labels = np.concatenate([labels for _, labels in batches]).astype(np.int32)
  return images, labels


def prepared_builder(config: ml_collections.ConfigDict):
  """The tfds.core.DatasetBuilder of `config.data`, its data set prepared (`_prepare`)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  builder = tfds.builder(config.name, data_dir=config.data_dir)
  manual_dir = config.manual_dir or os.path.join(builder.data_dir_root, 'downloads', 'manual')
  _prepare(builder, manual_dir)
  return builder


def _source_file_names(builder) -> dict[str, str]:
  """{url: file name in manual_dir} of the builder's registered source files."""
  return {url: url_info.filename or os.path.basename(url)
          for url, url_info in (builder.url_infos or {}).items()}


def _prepare(builder, manual_dir: str) -> None:
  """Builds the data set in the builder's data_dir unless it is there already.

  Source files are taken from `manual_dir` (checksums verified), or for Fashion-MNIST from the
  Debian package (checksums of the local files accepted), else downloaded by TFDS after a quick
  check that the server answers. Under `tfds.testing.mock_data` this is a no-op.

  Args:
    builder: the tfds.core.DatasetBuilder.
    manual_dir: folder with manually downloaded source files.

  Raises:
    DataError: the data set could not be prepared; the cause is chained.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  use_debian = builder.name == 'fashion_mnist' and os.path.isdir(DEBIAN_FASHION_MNIST_DIR)
  source_dir = DEBIAN_FASHION_MNIST_DIR if use_debian else manual_dir
  _guard_downloads(builder, source_dir, accept_local_checksums=use_debian)
  try:
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=source_dir))
  except Exception as e:  # pylint: disable=broad-except
    raise errors.DataError(_not_prepared_message(builder, manual_dir, e)) from e


def _guard_downloads(builder, source_dir: str, accept_local_checksums: bool) -> None:
  """Makes `builder` check, when it starts preparing, that it can get every source file.

  Files missing from `source_dir` must be downloadable: their servers are asked once, with a
  short timeout, so an offline machine fails in seconds instead of retrying for minutes. With
  `accept_local_checksums` the files in `source_dir` are accepted whatever their checksums.

  Args:
    builder: the tfds.core.DatasetBuilder whose download manager factory is wrapped.
    source_dir: folder searched for the registered source file names.
    accept_local_checksums: trust the local files (only for the Debian Fashion-MNIST package).
  """
  from tensorflow_datasets.core.download import checksums  # pylint: disable=g-import-not-at-top

  make_download_manager = builder._make_download_manager  # pylint: disable=protected-access

  def make_guarded_download_manager(*args, **kwargs):
    manager = make_download_manager(*args, **kwargs)
    missing_urls, local_url_infos = [], {}
    for url, file_name in _source_file_names(builder).items():
      path = os.path.join(source_dir, file_name)
      if not os.path.isfile(path):
        missing_urls.append(url)
      elif accept_local_checksums:
        local_url_infos[url] = checksums.compute_url_info(path)
    if local_url_infos:
      logging.info('Preparing %s offline from %s, accepting the checksums of the local files.',
                   builder.name, source_dir)
      # pylint: disable-next=protected-access
      manager._url_infos = {**manager._url_infos, **local_url_infos}
    _check_reachable(missing_urls)
    return manager

  builder._make_download_manager = make_guarded_download_manager  # pylint: disable=protected-access


def _check_reachable(urls: Sequence[str]) -> None:
  """Raises ConnectionError unless every url's server answers within the timeout."""
  import requests  # pylint: disable=g-import-not-at-top

  for url in urls:
    try:
      requests.head(url, timeout=_NETWORK_TIMEOUT_S, allow_redirects=False)
    except requests.RequestException as e:
      raise ConnectionError(f'cannot reach {url}') from e


def _not_prepared_message(builder, manual_dir: str, error: Exception) -> str:
  """One line: what is missing, where it was looked for, and how to provide it."""
  file_names = sorted(_source_file_names(builder).values())
  debian_hint = (' or run `apt-get install dataset-fashion-mnist`,'
                 if builder.name == 'fashion_mnist' else '')
  return (
      f'Data set {builder.name} is not prepared in data_dir={builder.data_dir_root} and could not '
      f'be prepared from manual_dir={manual_dir} or downloaded ({type(error).__name__}). Put the '
      f'original {", ".join(file_names)} in manual_dir,{debian_hint} or pass '
      '--config.data.manual_dir=DIR (a folder holding those files) or --config.data.data_dir=DIR '
      f'(a TFDS data dir where {builder.name} is already prepared).')


def sum_over_processes(tree):
  """Sums a pytree of numpy arrays over processes; every process gets the identical result."""
  return jax.tree.map(lambda x: x.sum(0), multihost_utils.process_allgather(tree))


def _chunks(images: np.ndarray) -> Iterator[np.ndarray]:
  """Float64 chunks [n, H, W, C] of the images scaled to [0, 1]."""
  for start in range(0, len(images), _STATS_CHUNK_SIZE):
    yield images[start:start + _STATS_CHUNK_SIZE].astype(np.float64) / 255


def _channel_mean_std(train_images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and std, float32 [C], of all processes' train images scaled to [0, 1]."""
  channels = train_images.shape[-1]
  sums = {'count': np.int64(len(train_images)), 'sum': np.zeros(channels),
          'sum_sq': np.zeros(channels)}
  for chunk in _chunks(train_images):
    sums['sum'] += chunk.sum((0, 1, 2))
    sums['sum_sq'] += np.square(chunk).sum((0, 1, 2))
  totals = sum_over_processes(sums)
  num_pixels = totals['count'] * np.prod(train_images.shape[1:3])
  mean = totals['sum'] / num_pixels
  variance = np.maximum(totals['sum_sq'] / num_pixels - np.square(mean), 0)
  return mean.astype(np.float32), np.sqrt(variance).astype(np.float32)


def _zca_matrix(train_images: np.ndarray, mean: np.ndarray, std: np.ndarray,
                epsilon: float) -> np.ndarray:
  """ZCA matrix float32 [D, D], D = H*W*C, of all processes' mean/std-normalised train images.

  W = U diag(1 / sqrt(S + epsilon)) U^T, where U diag(S) U^T is the covariance of the flattened
  normalised images.

  Args:
    train_images: uint8 [N_local, H, W, C].
    mean: float32 [C], from `_channel_mean_std`.
    std: float32 [C].
    epsilon: regulariser added to the eigenvalues.

  Returns:
    The symmetric whitening matrix.
  """
  dim = int(np.prod(train_images.shape[1:]))
  sums = {'count': np.int64(len(train_images)), 'sum': np.zeros(dim),
          'sum_outer': np.zeros((dim, dim))}
  for chunk in _chunks(train_images):
    flat = ((chunk - mean) / std).reshape(len(chunk), dim)
    sums['sum'] += flat.sum(0)
    sums['sum_outer'] += flat.T @ flat
  totals = sum_over_processes(sums)
  pixel_mean = totals['sum'] / totals['count']
  covariance = totals['sum_outer'] / totals['count'] - np.outer(pixel_mean, pixel_mean)
  eigenvalues, eigenvectors = np.linalg.eigh(covariance)
  scales = 1 / np.sqrt(np.maximum(eigenvalues, 0) + epsilon)
  return ((eigenvectors * scales) @ eigenvectors.T).astype(np.float32)


def normalise(images: jax.Array, mean: jax.Array, std: jax.Array,
              zca_matrix: jax.Array | None = None) -> jax.Array:
  """Scales uint8 images to [0, 1], standardises each channel, then optionally ZCA-whitens.

  Args:
    images: uint8 [B, H, W, C].
    mean: float32 [C].
    std: float32 [C].
    zca_matrix: float32 [H*W*C, H*W*C], applied to each flattened standardised image, or None.

  Returns:
    float32 [B, H, W, C].
  """
  standardised = (images.astype(jnp.float32) / 255 - mean) / std
  if zca_matrix is None:
    return standardised
  flat = standardised.reshape(standardised.shape[0], -1)
  whitened = jnp.matmul(flat, zca_matrix.T, precision=jax.lax.Precision.HIGHEST)
  return whitened.reshape(standardised.shape)


def augment(rng: jax.Array, images: jax.Array, crop_padding: int, flip: bool) -> jax.Array:
  """Random crop of the zero-padded image and random horizontal flip, drawn per example.

  `crop_padding` and `flip` must be static under jit.

  Args:
    rng: jax PRNG key.
    images: [B, H, W, C], any dtype.
    crop_padding: pixels of zero padding on each side before cropping back to H x W; 0 skips the
      crop.
    flip: whether to mirror each image left-right with probability 1/2.

  Returns:
    Augmented images, same shape and dtype as `images`.
  """
  crop_rng, flip_rng = jax.random.split(rng)
  if crop_padding:
    images = _random_crop(crop_rng, images, crop_padding)
  if flip:
    images = _random_flip(flip_rng, images)
  return images


def _random_crop(rng: jax.Array, images: jax.Array, padding: int) -> jax.Array:
  """An H x W window [B, H, W, C] at a random offset of each image zero-padded by `padding`."""
  _, height, width, channels = images.shape
  padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  offsets = jax.random.randint(rng, (images.shape[0], 2), 0, 2 * padding + 1)

  def crop(image, offset):
    return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (height, width, channels))

  return jax.vmap(crop)(padded, offsets)


def _random_flip(rng: jax.Array, images: jax.Array) -> jax.Array:
  """Each image [B, H, W, C] mirrored left-right with probability 1/2."""
  flipped = jax.random.bernoulli(rng, 0.5, (images.shape[0],))
  return jnp.where(flipped[:, None, None, None], images[:, :, ::-1], images)


def train_batches(images: np.ndarray, labels: np.ndarray, local_batch_size: int, seed: int,
                  start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
  """Infinite shuffled batches of this process's shard, starting at global step `start_step`.

  Epoch e visits the shard in the order of a permutation drawn from `[seed, e]` and drops its
  last `len(images) % local_batch_size` examples, so step s is batch s % steps_per_epoch of
  epoch s // steps_per_epoch: resuming at `start_step` yields exactly the batches an
  uninterrupted iterator yields from there on.

  Args:
    images: [N, H, W, C].
    labels: [N].
    local_batch_size: examples per batch on this process.
    seed: non-negative shuffling seed.
    start_step: global step of the first batch.

  Returns:
    An iterator of dicts with `image` [b, H, W, C] and `label` [b], b = local_batch_size.

  Raises:
    ConfigError: the shard holds fewer examples than one batch.
  """
  steps_per_epoch = local_steps_per_epoch(len(images), local_batch_size, start_step)
  return _shuffled_batches(images, labels, local_batch_size, seed, steps_per_epoch, start_step)


def local_steps_per_epoch(num_local_examples: int, local_batch_size: int, start_step: int) -> int:
  """Full batches in this process's train shard; checks the shard and `start_step`.

  Raises:
    ConfigError: the shard holds fewer examples than one batch.
    ValueError: `start_step` is negative.
  """
  if num_local_examples < local_batch_size:
    raise errors.ConfigError(
        f'The local batch size {local_batch_size} is larger than this process\'s '
        f'{num_local_examples} train examples; lower the batch size.')
  if start_step < 0:
    raise ValueError(f'start_step={start_step} must be non-negative.')
  return num_local_examples // local_batch_size


def _shuffled_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int,
                      steps_per_epoch: int, start_step: int) -> Iterator[dict[str, np.ndarray]]:
  epoch, first_step = divmod(start_step, steps_per_epoch)
  while True:
    order = np.random.default_rng([seed, epoch]).permutation(len(images))
    for step in range(first_step, steps_per_epoch):
      indices = order[step * batch_size:(step + 1) * batch_size]
      yield {'image': images[indices], 'label': labels[indices]}
    epoch, first_step = epoch + 1, 0


def eval_batches(images: np.ndarray, labels: np.ndarray, local_batch_size: int,
                 num_batches: int) -> Iterator[dict[str, np.ndarray]]:
  """Exactly `num_batches` batches of this shard in order, zero-padded to full size.

  Every example appears once with mask 1; padding (the end of the last partial batch, and whole
  batches beyond the shard) has mask 0, so processes with fewer examples still run
  `num_batches` steps.

  Args:
    images: [N, H, W, C].
    labels: [N].
    local_batch_size: examples per batch on this process (b).
    num_batches: batches to yield, e.g. from `num_eval_batches`.

  Yields:
    Dicts with `image` [b, H, W, C], `label` [b] and `mask` float32 [b].
  """
  for start in range(0, num_batches * local_batch_size, local_batch_size):
    end = start + local_batch_size
    yield padded_batch({'image': images[start:end], 'label': labels[start:end]},
                       local_batch_size)


def padded_batch(batch: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
  """`batch` of n <= size examples zero-padded to `size`, with `mask` float32 [size] (1: real)."""
  padded = {}
  for name, array in batch.items():
    padded[name] = np.zeros((size, *array.shape[1:]), array.dtype)
    padded[name][:len(array)] = array
  padded['mask'] = (np.arange(size) < len(batch['label'])).astype(np.float32)
  return padded


def num_eval_batches(num_local_examples: int, local_batch_size: int) -> int:
  """Eval steps every process runs: the most batches any process needs for its shard."""
  local_batches = np.int64(-(-num_local_examples // local_batch_size))
  return int(multihost_utils.process_allgather(local_batches).max())
