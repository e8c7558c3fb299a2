"""Tests for lpta.input_pipeline."""

import gzip
import os
import subprocess
import sys
import time

import jax
import ml_collections
import numpy as np
import pytest

from lpta import errors
from lpta import input_pipeline

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _data_config(**overrides) -> ml_collections.ConfigDict:
  fields = dict(
      name='synthetic', data_dir=None, manual_dir=None, zca=False, zca_epsilon=1e-2,
      random_crop_padding=4, random_flip=True, image_size=None, train_split='train',
      synthetic_image_shape=(8, 8, 3), synthetic_num_classes=10, synthetic_num_train=64,
      synthetic_num_test=20)
  fields.update(overrides)
  return ml_collections.ConfigDict(fields)


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

  out = input_pipeline.normalise(images, mean, std)

  assert out.dtype == np.float32
  np.testing.assert_allclose(out, [[[[-0.2, 2.0], [0.2, -0.4]]]], atol=1e-6)


def test_normalise_applies_zca_to_flattened_image():
  images = np.array([[[[0, 255], [51, 102]]]], np.uint8)
  mean = np.array([0.1, 0.5], np.float32)
  std = np.array([0.5, 0.25], np.float32)
  reverse_and_double = 2 * np.eye(4, dtype=np.float32)[::-1]

  out = input_pipeline.normalise(images, mean, std, reverse_and_double)

  # Flattened standardised image is [-0.2, 2.0, 0.2, -0.4].
  np.testing.assert_allclose(out, [[[[-0.8, 0.4], [4.0, -0.4]]]], atol=1e-6)


# load (synthetic, no TensorFlow)


def test_load_synthetic_has_configured_shapes_and_counts():
  dataset = input_pipeline.load(_data_config())

  assert dataset.train_images.shape == (64, 8, 8, 3)
  assert dataset.train_images.dtype == np.uint8
  assert dataset.train_labels.shape == (64,)
  assert dataset.train_labels.dtype == np.int32
  assert dataset.test_images.shape == (20, 8, 8, 3)
  assert dataset.test_labels.shape == (20,)
  assert dataset.image_shape == (8, 8, 3)
  assert (dataset.num_classes, dataset.num_train_examples, dataset.num_test_examples) == (
      10, 64, 20)
  assert set(np.unique(dataset.train_labels)) <= set(range(10))
  assert dataset.zca_matrix is None


def test_load_synthetic_is_reproducible_and_splits_differ():
  first = input_pipeline.load(_data_config())
  second = input_pipeline.load(_data_config())

  np.testing.assert_array_equal(first.train_images, second.train_images)
  np.testing.assert_array_equal(first.test_labels, second.test_labels)
  assert not np.array_equal(first.train_images[:20], first.test_images)


def test_load_synthetic_stats_come_from_train_split():
  dataset = input_pipeline.load(_data_config())

  pixels = dataset.train_images.reshape(-1, 3) / 255
  assert dataset.mean.dtype == dataset.std.dtype == np.float32
  np.testing.assert_allclose(dataset.mean, pixels.mean(0), rtol=1e-6)
  np.testing.assert_allclose(dataset.std, pixels.std(0), rtol=1e-5)


def test_zca_whitened_train_data_has_identity_covariance():
  config = _data_config(zca=True, zca_epsilon=1e-9, synthetic_image_shape=(3, 3, 2),
                        synthetic_num_train=2000)
  dataset = input_pipeline.load(config)

  assert dataset.zca_matrix.shape == (18, 18)
  assert dataset.zca_matrix.dtype == np.float32
  np.testing.assert_allclose(dataset.zca_matrix, dataset.zca_matrix.T, atol=1e-6)
  whitened = input_pipeline.normalise(dataset.train_images, dataset.mean, dataset.std,
                                      dataset.zca_matrix)
  covariance = np.cov(np.asarray(whitened).reshape(2000, 18), rowvar=False, bias=True)
  np.testing.assert_allclose(covariance, np.eye(18), atol=1e-4)


def test_synthetic_load_does_not_import_tensorflow():
  script = ('import sys, ml_collections; from lpta import input_pipeline; '
            f'input_pipeline.load(ml_collections.ConfigDict({dict(_data_config())!r})); '
            "print(sorted(m for m in sys.modules if m.startswith('tensorflow')))")

  result = subprocess.run([sys.executable, '-c', script], cwd=REPO_ROOT, capture_output=True,
                          text=True, check=True)

  assert result.stdout.strip() == '[]'


# augment


def test_augment_without_crop_or_flip_is_identity():
  images = _random_images((4, 6, 5, 3))

  out = input_pipeline.augment(jax.random.key(0), images, crop_padding=0, flip=False)

  np.testing.assert_array_equal(out, images)


def test_augment_flip_gives_input_or_its_mirror_and_both_occur():
  images = _random_images((64, 6, 5, 3))

  out = np.asarray(input_pipeline.augment(jax.random.key(1), images, crop_padding=0, flip=True))

  kept = [np.array_equal(o, i) for o, i in zip(out, images)]
  mirrored = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, images)]
  assert all(k != m for k, m in zip(kept, mirrored))
  assert any(kept) and any(mirrored)


def test_augment_crop_is_a_window_of_the_zero_padded_image():
  padding, images = 2, _random_images((32, 6, 5, 3))
  padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))

  out = np.asarray(input_pipeline.augment(jax.random.key(2), images, padding, flip=False))

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
  jitted = jax.jit(input_pipeline.augment, static_argnums=(2, 3))

  first = jitted(jax.random.key(3), images, 4, True)
  again = input_pipeline.augment(jax.random.key(3), images, 4, True)
  other = jitted(jax.random.key(4), images, 4, True)

  np.testing.assert_array_equal(first, again)
  assert not np.array_equal(first, other)


# train_batches


def _labelled_images(num_examples):
  """Images [N, 2, 2, 1] whose pixels all equal the example index, and labels = index."""
  labels = np.arange(num_examples, dtype=np.int32)
  return np.broadcast_to(labels[:, None, None, None], (num_examples, 2, 2, 1)).copy(), labels


def _take(iterator, count):
  return [next(iterator) for _ in range(count)]


def test_train_batches_are_deterministic_for_a_seed():
  images, labels = _labelled_images(10)

  first = _take(input_pipeline.train_batches(images, labels, 3, seed=7), 6)
  again = _take(input_pipeline.train_batches(images, labels, 3, seed=7), 6)
  other = _take(input_pipeline.train_batches(images, labels, 3, seed=8), 6)

  for a, b in zip(first, again):
    np.testing.assert_array_equal(a['label'], b['label'])
    np.testing.assert_array_equal(a['image'], b['image'])
  assert any(not np.array_equal(a['label'], b['label']) for a, b in zip(first, other))


def test_train_batches_resume_matches_uninterrupted_run():
  images, labels = _labelled_images(10)  # 3 steps per epoch.
  uninterrupted = _take(input_pipeline.train_batches(images, labels, 3, seed=5), 12)

  for start_step in range(10):
    resumed = _take(input_pipeline.train_batches(images, labels, 3, 5, start_step),
                    12 - start_step)
    for expected, batch in zip(uninterrupted[start_step:], resumed):
      np.testing.assert_array_equal(batch['label'], expected['label'])
      np.testing.assert_array_equal(batch['image'], expected['image'])


def test_each_train_epoch_is_a_permutation_minus_the_remainder():
  images, labels = _labelled_images(10)
  batches = _take(input_pipeline.train_batches(images, labels, 3, seed=0), 12)

  epochs = [np.concatenate([b['label'] for b in batches[e:e + 3]]) for e in range(0, 12, 3)]
  for batch in batches:
    assert batch['image'].shape == (3, 2, 2, 1)
    np.testing.assert_array_equal(batch['image'][:, 0, 0, 0], batch['label'])
  for epoch in epochs:
    assert len(set(epoch)) == 9 and set(epoch) <= set(range(10))
  assert len({tuple(epoch) for epoch in epochs}) == 4


def test_train_batches_reject_batch_larger_than_shard():
  images, labels = _labelled_images(10)

  with pytest.raises(errors.ConfigError, match='batch size'):
    input_pipeline.train_batches(images, labels, 11, seed=0)


# eval_batches


def test_eval_batches_cover_every_example_once_with_padding():
  images, labels = _labelled_images(10)

  batches = list(input_pipeline.eval_batches(images, labels, 4, num_batches=3))

  assert len(batches) == 3
  masks = np.stack([b['mask'] for b in batches])
  assert masks.dtype == np.float32 and masks.sum() == 10
  np.testing.assert_array_equal(masks[2], [1, 1, 0, 0])
  real = np.concatenate([b['label'][b['mask'] == 1] for b in batches])
  np.testing.assert_array_equal(real, np.arange(10))
  np.testing.assert_array_equal(batches[2]['image'][2:], 0)
  assert all(b['image'].shape == (4, 2, 2, 1) for b in batches)


def test_eval_batches_past_the_shard_are_all_padding():
  images, labels = _labelled_images(10)

  batches = list(input_pipeline.eval_batches(images, labels, 4, num_batches=5))

  assert len(batches) == 5
  assert sum(b['mask'].sum() for b in batches) == 10
  for batch in batches[3:]:
    np.testing.assert_array_equal(batch['mask'], 0)
    np.testing.assert_array_equal(batch['image'], 0)
    assert batch['image'].shape == (4, 2, 2, 1)


def test_num_eval_batches_rounds_up():
  assert input_pipeline.num_eval_batches(10, 4) == 3
  assert input_pipeline.num_eval_batches(8, 4) == 2
  assert input_pipeline.num_eval_batches(1, 4) == 1


# load (TFDS)


def test_load_under_tfds_mock_gives_cifar10_arrays(tmp_path):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  with tfds.testing.mock_data(num_examples=12):
    dataset = input_pipeline.load(_data_config(name='cifar10', data_dir=str(tmp_path)))

  assert dataset.train_images.shape == (12, 32, 32, 3)
  assert dataset.train_images.dtype == dataset.test_images.dtype == np.uint8
  assert dataset.test_images.shape == (12, 32, 32, 3)
  assert dataset.train_labels.dtype == dataset.test_labels.dtype == np.int32
  assert dataset.num_classes == 10
  assert set(np.unique(dataset.train_labels)) <= set(range(10))
  assert (dataset.num_train_examples, dataset.num_test_examples) == (12, 12)
  assert dataset.mean.shape == dataset.std.shape == (3,)
  pixels = dataset.train_images.reshape(-1, 3) / 255
  np.testing.assert_allclose(dataset.mean, pixels.mean(0), rtol=1e-6)
  np.testing.assert_allclose(dataset.std, pixels.std(0), rtol=1e-5)


@pytest.mark.usefixtures('offline')
def test_missing_data_set_offline_fails_fast_with_one_line(tmp_path):
  config = _data_config(name='cifar100', data_dir=str(tmp_path / 'tfds'),
                        manual_dir=str(tmp_path / 'manual'))

  start = time.monotonic()
  with pytest.raises(errors.DataError) as raised:
    input_pipeline.load(config)

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
    input_pipeline.load(config)

  assert '\n' not in str(raised.value)


@pytest.mark.usefixtures('offline')
def test_checksums_are_relaxed_for_the_debian_directory_only(tmp_path, monkeypatch):
  fake_files = _write_fake_fashion_mnist(tmp_path / 'fake')

  monkeypatch.setattr(input_pipeline, 'DEBIAN_FASHION_MNIST_DIR', str(tmp_path / 'no-debian'))
  with pytest.raises(errors.DataError, match='NonMatchingChecksumError') as raised:
    input_pipeline.load(_data_config(name='fashion_mnist', data_dir=str(tmp_path / 'user'),
                                     manual_dir=str(fake_files)))
  assert 'apt-get install dataset-fashion-mnist' in str(raised.value)

  monkeypatch.setattr(input_pipeline, 'DEBIAN_FASHION_MNIST_DIR', str(fake_files))
  with pytest.raises(errors.DataError) as raised:
    input_pipeline.load(_data_config(name='fashion_mnist', data_dir=str(tmp_path / 'debian'),
                                     manual_dir=str(tmp_path / 'empty')))
  # Accepted by the checksum check, the fake files only fail later, when TFDS parses them.
  assert 'NonMatchingChecksumError' not in str(raised.value)
  assert type(raised.value.__cause__).__name__ != 'NonMatchingChecksumError'


# config validation


@pytest.mark.parametrize('overrides, expected', [
    (dict(name='mnist'), 'cifar10, cifar100, svhn_cropped, fashion_mnist, imagenet2012, synthetic'),
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
])
def test_bad_config_values_raise_config_error(overrides, expected):
  with pytest.raises(errors.ConfigError, match=expected):
    input_pipeline.load(_data_config(**overrides))


def test_missing_config_field_raises_config_error():
  config = _data_config()
  del config['random_flip']

  with pytest.raises(errors.ConfigError, match='random_flip'):
    input_pipeline.load(config)


@pytest.mark.parametrize('name, shape, classes', [
    ('cifar100', (32, 32, 3), 100), ('fashion_mnist', (28, 28, 1), 10),
    ('synthetic', (8, 8, 3), 10), ('imagenet2012', (224, 224, 3), 1000)])
def test_image_shape_and_classes_without_loading(name, shape, classes):
  config = _data_config(name=name)
  assert input_pipeline.image_shape_and_classes(config) == (shape, classes)
  if name == 'imagenet2012':
    config.image_size = 96
    assert input_pipeline.image_shape_and_classes(config) == ((96, 96, 3), classes)
  if name == 'synthetic':
    dataset = input_pipeline.load(config)
    assert (dataset.image_shape, dataset.num_classes) == (shape, classes)
