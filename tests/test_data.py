"""The data sources (lpta.data): registry, in-memory loading, validation split, preprocessing,
batching, offline preparation and config validation."""

import gzip
import os
import subprocess
import sys
import time

import jax
import ml_collections
import numpy as np
import pytest

from lpta import data
from lpta import errors
from lpta.data import batching
from lpta.data import preprocessing
from lpta.data import tfds_preparation

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _data_config(**overrides) -> ml_collections.ConfigDict:
  fields = dict(
      name='synthetic', data_dir=None, manual_dir=None, zca=False, zca_epsilon=1e-2,
      random_crop_padding=4, random_flip=True, image_size=None, train_split='train',
      validation_split=0, synthetic_image_shape=(8, 8, 3), synthetic_num_classes=10,
      synthetic_num_train=64, synthetic_num_test=20)
  fields.update(overrides)
  return ml_collections.ConfigDict(fields)


def _load(**overrides):
  return data.get(_data_config(**overrides)).load()


def _random_images(shape, seed=0) -> np.ndarray:
  """uint8 images with values in [1, 255], so zero padding is recognisable."""
  return np.random.default_rng(seed).integers(1, 256, shape, dtype=np.uint8)


def _write_fake_fashion_mnist(directory):
  """Gzip files with the registered Fashion-MNIST names but contents (and checksums) of our own."""
  directory.mkdir()
  for name in ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz',
               't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'):
    (directory / name).write_bytes(gzip.compress(b'\0' * 64))
  return directory



# normalise


def test_normalise_matches_hand_computation():
  images = np.array([[[[0, 255], [51, 102]]]], np.uint8)  # [1, 1, 2, 2]
  mean = np.array([0.1, 0.5], np.float32)
  std = np.array([0.5, 0.25], np.float32)

  out = preprocessing.Normalisation(mean, std)(preprocessing.to_unit_range(images))

  assert out.dtype == np.float32
  np.testing.assert_allclose(out, [[[[-0.2, 2.0], [0.2, -0.4]]]], atol=1e-6)


def test_normalise_applies_zca_to_flattened_image():
  images = np.array([[[[0, 255], [51, 102]]]], np.uint8)
  mean = np.array([0.1, 0.5], np.float32)
  std = np.array([0.5, 0.25], np.float32)
  reverse_and_double = 2 * np.eye(4, dtype=np.float32)[::-1]

  out = preprocessing.Normalisation(mean, std, reverse_and_double)(
      preprocessing.to_unit_range(images))

  # Flattened standardised image is [-0.2, 2.0, 0.2, -0.4].
  np.testing.assert_allclose(out, [[[[-0.8, 0.4], [4.0, -0.4]]]], atol=1e-6)


# load (synthetic, no TensorFlow)


def test_load_synthetic_has_configured_shapes_and_counts():
  dataset = _load()

  train, test = dataset.shards['train'], dataset.shards['test']
  assert train['image'].shape == (64, 8, 8, 3)
  assert train['image'].dtype == np.uint8
  assert train['label'].shape == (64,)
  assert train['label'].dtype == np.int32
  assert test['image'].shape == (20, 8, 8, 3)
  assert test['label'].shape == (20,)
  assert dataset.image_shape == (8, 8, 3)
  assert dataset.num_classes == 10 and dataset.class_names[3] == 'class 3'
  assert dataset.num_examples == {'train': 64, 'test': 20}
  assert dataset.eval_splits == ('test',)
  assert set(np.unique(train['label'])) <= set(range(10))
  assert dataset.statistics.zca_matrix is None


def test_load_synthetic_is_reproducible_and_splits_differ():
  first, second = _load(), _load()

  np.testing.assert_array_equal(first.shards['train']['image'], second.shards['train']['image'])
  np.testing.assert_array_equal(first.shards['test']['label'], second.shards['test']['label'])
  assert not np.array_equal(first.shards['train']['image'][:20], first.shards['test']['image'])


def test_load_synthetic_stats_come_from_train_split():
  dataset = _load()

  pixels = dataset.shards['train']['image'].reshape(-1, 3) / 255
  statistics = dataset.statistics
  assert statistics.mean.dtype == statistics.std.dtype == np.float32
  np.testing.assert_allclose(statistics.mean, pixels.mean(0), rtol=1e-6)
  np.testing.assert_allclose(statistics.std, pixels.std(0), rtol=1e-5)


def test_validation_split_is_the_end_of_train_held_out_of_training_and_statistics():
  whole = _load()
  dataset = _load(validation_split=14)

  train, validation = dataset.shards['train'], dataset.shards['validation']
  whole_train = whole.shards['train']
  np.testing.assert_array_equal(train['image'], whole_train['image'][:50])
  np.testing.assert_array_equal(validation['label'], whole_train['label'][50:])
  assert dataset.num_examples == {'train': 50, 'validation': 14, 'test': 20}
  assert dataset.eval_splits == ('validation', 'test')
  pixels = train['image'].reshape(-1, 3) / 255
  np.testing.assert_allclose(dataset.statistics.mean, pixels.mean(0), rtol=1e-6)
  np.testing.assert_array_equal(dataset.shards['test']['image'], whole.shards['test']['image'])
  assert sum(1 for _ in dataset.eval_batches('validation', 8)) == 2


def test_a_validation_split_without_training_examples_is_refused():
  with pytest.raises(errors.ConfigError, match='validation_split=64 leaves no training example'):
    _load(validation_split=64)


def test_zca_whitened_train_data_has_identity_covariance():
  dataset = _load(zca=True, zca_epsilon=1e-9, synthetic_image_shape=(3, 3, 2),
                  synthetic_num_train=2000)

  zca = dataset.statistics.zca_matrix
  assert zca.shape == (18, 18)
  assert zca.dtype == np.float32
  np.testing.assert_allclose(zca, zca.T, atol=1e-6)
  whitened = dataset.statistics(preprocessing.to_unit_range(dataset.shards['train']['image']))
  covariance = np.cov(np.asarray(whitened).reshape(2000, 18), rowvar=False, bias=True)
  np.testing.assert_allclose(covariance, np.eye(18), atol=1e-4)


def test_synthetic_load_does_not_import_tensorflow():
  script = ('import sys, ml_collections; from lpta import data; '
            f'data.get(ml_collections.ConfigDict({dict(_data_config())!r})).load(); '
            "print(sorted(m for m in sys.modules if m.startswith('tensorflow')))")

  result = subprocess.run([sys.executable, '-c', script], cwd=REPO_ROOT, capture_output=True,
                          text=True, check=True)

  assert result.stdout.strip() == '[]'


# augment


def test_augment_without_crop_or_flip_is_identity():
  images = _random_images((4, 6, 5, 3))

  out = preprocessing.augment(jax.random.key(0), images, crop_padding=0, flip=False)

  np.testing.assert_array_equal(out, images)


def test_augment_flip_gives_input_or_its_mirror_and_both_occur():
  images = _random_images((64, 6, 5, 3))

  out = np.asarray(preprocessing.augment(jax.random.key(1), images, crop_padding=0, flip=True))

  kept = [np.array_equal(o, i) for o, i in zip(out, images)]
  mirrored = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, images)]
  assert all(k != m for k, m in zip(kept, mirrored))
  assert any(kept) and any(mirrored)


def test_augment_crop_is_a_window_of_the_zero_padded_image():
  padding, images = 2, _random_images((32, 6, 5, 3))
  padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))

  out = np.asarray(preprocessing.augment(jax.random.key(2), images, padding, flip=False))

  assert out.shape == images.shape and out.dtype == np.uint8
  offsets = set()
  for image, window in zip(padded, out):
    matches = [(dy, dx) for dy in range(2 * padding + 1) for dx in range(2 * padding + 1)
               if np.array_equal(image[dy:dy + 6, dx:dx + 5], window)]
    assert len(matches) == 1
    offsets.add(matches[0])
  assert len(offsets) > 5


def test_augment_depends_only_on_key_and_works_under_jit():
  images = _random_images((8, 6, 5, 3))
  jitted = jax.jit(preprocessing.augment, static_argnums=(2, 3))

  first = jitted(jax.random.key(3), images, 4, True)
  again = preprocessing.augment(jax.random.key(3), images, 4, True)
  other = jitted(jax.random.key(4), images, 4, True)

  np.testing.assert_array_equal(first, again)
  assert not np.array_equal(first, other)


# train_batches


def _labelled_images(num_examples):
  """{'image' [N, 2, 2, 1] whose pixels all equal the example index, 'label' = index}."""
  labels = np.arange(num_examples, dtype=np.int32)
  return {'image': np.broadcast_to(labels[:, None, None, None], (num_examples, 2, 2, 1)).copy(),
          'label': labels}


def _take(iterator, count):
  return [next(iterator) for _ in range(count)]


def test_train_batches_are_deterministic_for_a_seed():
  arrays = _labelled_images(10)

  first = _take(batching.train_batches(arrays, 3, seed=7), 6)
  again = _take(batching.train_batches(arrays, 3, seed=7), 6)
  other = _take(batching.train_batches(arrays, 3, seed=8), 6)

  for a, b in zip(first, again):
    np.testing.assert_array_equal(a['label'], b['label'])
    np.testing.assert_array_equal(a['image'], b['image'])
  assert any(not np.array_equal(a['label'], b['label']) for a, b in zip(first, other))


def test_train_batches_resume_matches_uninterrupted_run():
  arrays = _labelled_images(10)  # 3 steps per epoch.
  uninterrupted = _take(batching.train_batches(arrays, 3, seed=5), 12)

  for start_step in range(10):
    resumed = _take(batching.train_batches(arrays, 3, 5, start_step),
                    12 - start_step)
    for expected, batch in zip(uninterrupted[start_step:], resumed):
      np.testing.assert_array_equal(batch['label'], expected['label'])
      np.testing.assert_array_equal(batch['image'], expected['image'])


def test_each_train_epoch_is_a_permutation_minus_the_remainder():
  arrays = _labelled_images(10)
  batches = _take(batching.train_batches(arrays, 3, seed=0), 12)

  epochs = [np.concatenate([b['label'] for b in batches[e:e + 3]]) for e in range(0, 12, 3)]
  for batch in batches:
    assert batch['image'].shape == (3, 2, 2, 1)
    np.testing.assert_array_equal(batch['image'][:, 0, 0, 0], batch['label'])
  for epoch in epochs:
    assert len(set(epoch)) == 9 and set(epoch) <= set(range(10))
  assert len({tuple(epoch) for epoch in epochs}) == 4


def test_train_batches_reject_batch_larger_than_shard():
  arrays = _labelled_images(10)

  with pytest.raises(errors.ConfigError, match='batch size'):
    batching.train_batches(arrays, 11, seed=0)


# eval_batches


def test_eval_batches_cover_every_example_once_with_padding():
  arrays = _labelled_images(10)

  batches = list(batching.eval_batches(arrays, 4, num_batches=3))

  assert len(batches) == 3
  masks = np.stack([b['mask'] for b in batches])
  assert masks.dtype == np.float32 and masks.sum() == 10
  np.testing.assert_array_equal(masks[2], [1, 1, 0, 0])
  real = np.concatenate([b['label'][b['mask'] == 1] for b in batches])
  np.testing.assert_array_equal(real, np.arange(10))
  np.testing.assert_array_equal(batches[2]['image'][2:], 0)
  assert all(b['image'].shape == (4, 2, 2, 1) for b in batches)


def test_eval_batches_past_the_shard_are_all_padding():
  arrays = _labelled_images(10)

  batches = list(batching.eval_batches(arrays, 4, num_batches=5))

  assert len(batches) == 5
  assert sum(b['mask'].sum() for b in batches) == 10
  for batch in batches[3:]:
    np.testing.assert_array_equal(batch['mask'], 0)
    np.testing.assert_array_equal(batch['image'], 0)
    assert batch['image'].shape == (4, 2, 2, 1)


def test_num_eval_batches_cover_the_largest_process_shard():
  assert batching.num_eval_batches(10, 4, process_count=1) == 3
  assert batching.num_eval_batches(8, 4, process_count=1) == 2
  assert batching.num_eval_batches(1, 4, process_count=1) == 1
  # 10 examples over 3 processes: shards of 3, 3, 4; the largest needs 2 batches of 3.
  sizes = [len(range(10)[batching.process_shard(10, index, 3)]) for index in range(3)]
  assert sorted(sizes) == [3, 3, 4]
  assert batching.num_eval_batches(10, 3, process_count=3) == 2


def test_process_shards_partition_an_evaluation_split():
  shards = [range(11)[batching.process_shard(11, index, 4)] for index in range(4)]
  assert [x for shard in shards for x in shard] == list(range(11))


def test_processes_feed_their_slices_of_the_batches_one_process_would_feed():
  arrays = _labelled_images(20)
  single = _take(batching.train_batches(arrays, 4, seed=3, process_index=0, process_count=1), 8)
  parts = [_take(batching.train_batches(arrays, 2, seed=3, start_step=1, process_index=index,
                                        process_count=2), 7) for index in range(2)]
  for step, batch in enumerate(single[1:]):
    np.testing.assert_array_equal(
        np.concatenate([parts[0][step]['label'], parts[1][step]['label']]), batch['label'])


# load (TFDS)


def test_load_under_tfds_mock_gives_cifar10_arrays(tmp_path):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  with tfds.testing.mock_data(num_examples=12):
    dataset = _load(name='cifar10', data_dir=str(tmp_path))

  train, test = dataset.shards['train'], dataset.shards['test']
  assert train['image'].shape == (12, 32, 32, 3)
  assert train['image'].dtype == test['image'].dtype == np.uint8
  assert test['image'].shape == (12, 32, 32, 3)
  assert train['label'].dtype == test['label'].dtype == np.int32
  assert len(dataset.class_names) == 10  # mock data names them '0'..'9'; real CIFAR-10 by word
  assert set(np.unique(train['label'])) <= set(range(10))
  assert dataset.num_examples == {'train': 12, 'test': 12}
  statistics = dataset.statistics
  assert statistics.mean.shape == statistics.std.shape == (3,)
  pixels = train['image'].reshape(-1, 3) / 255
  np.testing.assert_allclose(statistics.mean, pixels.mean(0), rtol=1e-6)
  np.testing.assert_allclose(statistics.std, pixels.std(0), rtol=1e-5)


@pytest.mark.usefixtures('offline')
def test_missing_data_set_offline_fails_fast_with_one_line(tmp_path):
  config = _data_config(name='cifar100', data_dir=str(tmp_path / 'tfds'),
                        manual_dir=str(tmp_path / 'manual'))

  start = time.monotonic()
  with pytest.raises(errors.DataError) as raised:
    data.get(config).load()

  assert time.monotonic() - start < 20
  message = str(raised.value)
  assert '\n' not in message
  assert 'cifar-100-binary.tar.gz' in message
  assert 'manual_dir=' + str(tmp_path / 'manual') in message
  assert '--config.data.manual_dir=' in message and '--config.data.data_dir=' in message
  assert raised.value.__cause__ is not None


@pytest.mark.usefixtures('offline')
def test_corrupt_file_in_manual_dir_fails_checksum(tmp_path):
  manual_dir = tmp_path / 'manual'
  manual_dir.mkdir()
  (manual_dir / 'cifar-10-binary.tar.gz').write_bytes(b'not the CIFAR-10 archive')
  config = _data_config(name='cifar10', data_dir=str(tmp_path / 'tfds'),
                        manual_dir=str(manual_dir))

  with pytest.raises(errors.DataError, match='Checksum') as raised:
    data.get(config).load()

  assert '\n' not in str(raised.value)


@pytest.mark.usefixtures('offline')
def test_checksums_are_relaxed_for_the_debian_directory_only(tmp_path, monkeypatch):
  fake_files = _write_fake_fashion_mnist(tmp_path / 'fake')

  monkeypatch.setattr(tfds_preparation, 'DEBIAN_FASHION_MNIST_DIR', str(tmp_path / 'no-debian'))
  with pytest.raises(errors.DataError, match='NonMatchingChecksumError') as raised:
    _load(name='fashion_mnist', data_dir=str(tmp_path / 'user'), manual_dir=str(fake_files))
  assert 'apt-get install dataset-fashion-mnist' in str(raised.value)

  monkeypatch.setattr(tfds_preparation, 'DEBIAN_FASHION_MNIST_DIR', str(fake_files))
  with pytest.raises(errors.DataError) as raised:
    _load(name='fashion_mnist', data_dir=str(tmp_path / 'debian'),
          manual_dir=str(tmp_path / 'empty'))
  # Accepted by the checksum check, the fake files only fail later, when TFDS parses them.
  assert 'NonMatchingChecksumError' not in str(raised.value)
  assert type(raised.value.__cause__).__name__ != 'NonMatchingChecksumError'


# config validation


@pytest.mark.parametrize('overrides, expected', [
    (dict(name='mnist'), ', '.join(data.REGISTRY)),
    (dict(name='cifar10', image_size=64), 'image_size=64 only applies to streamed'),
    (dict(name='imagenet2012', random_crop_padding=4), 'random_crop_padding=0'),
    (dict(name='imagenet2012', random_crop_padding=0, zca=True), 'zca=False'),
    (dict(name='imagenet2012', random_crop_padding=0, image_size=0), 'image_size'),
    (dict(random_crop_padding=-1), 'random_crop_padding'),
    (dict(random_crop_padding=2.5), 'random_crop_padding'),
    (dict(zca=True, zca_epsilon=0.0), 'zca_epsilon'),
    (dict(zca='yes'), 'zca'),
    (dict(random_flip=1), 'random_flip'),
    (dict(synthetic_image_shape=(8, 8)), 'synthetic_image_shape'),
    (dict(synthetic_num_train=0), 'synthetic_num_train'),
    (dict(synthetic_num_classes=-3), 'synthetic_num_classes'),
    (dict(name='cifar10', train_split='test'), 'train_split'),
    (dict(train_split='train[:50%]'), "train_split must be 'train' for synthetic"),
    (dict(validation_split=-5), 'validation_split=-5 must be an integer >= 0'),
])
def test_bad_config_values_raise_config_error(overrides, expected):
  with pytest.raises(errors.ConfigError, match=expected):
    data.get(_data_config(**overrides))


def test_missing_config_field_raises_config_error():
  config = _data_config()
  del config['random_flip']

  with pytest.raises(errors.ConfigError, match='random_flip'):
    data.get(config).load()


@pytest.mark.parametrize('name, shape, classes', [
    ('cifar100', (32, 32, 3), 100), ('fashion_mnist', (28, 28, 1), 10),
    ('synthetic', (8, 8, 3), 10), ('imagenet2012', (224, 224, 3), 1000)])
def test_image_shape_and_classes_without_loading(name, shape, classes):
  config = _data_config(name=name, random_crop_padding=0)
  source = data.get(config)
  assert (source.image_shape, source.num_classes) == (shape, classes)
  if name == 'imagenet2012':
    config.image_size = 96
    assert data.get(config).image_shape == (96, 96, 3)
  if name == 'synthetic':
    dataset = source.load()
    assert (dataset.image_shape, dataset.num_classes) == (shape, classes)
