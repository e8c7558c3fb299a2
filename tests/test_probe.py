"""Tests of the probe evaluator: the descriptor reader, the digits probe set, the train sample of
the run's own data, the probe itself and the files that evaluate_run writes."""

import csv
import json

import flax.linen as nn
import ml_collections
import numpy as np
import pytest
from sklearn import datasets

from lpta import data
from lpta import evaluators
from lpta.errors import ConfigError
from lpta.errors import LptaError
from lpta.evaluators import probe
import toy_runs

RESULT_KEYS = {'probe_accuracy', 'pixel_probe_accuracy', 'descriptor_size', 'train_examples',
               'test_examples'}


class ChannelMeans(nn.Module):
  """The classifier reads the per-image channel means; a hidden Dense of 7 units (not K) also
  runs and must not count."""
  num_classes: int

  @nn.compact
  def __call__(self, images, *, train):
    hidden = nn.Dense(7, name='hidden')(images.reshape(images.shape[0], -1))
    logits = nn.Dense(self.num_classes, name='classifier')(images.mean(axis=(1, 2)))
    return logits + hidden[:, :1], {}


class TwoHeads(nn.Module):
  """Indep-like: two classifiers whose logits are summed; classifier2 (on the channel maxima)
  is called before classifier1 (on the channel means)."""
  num_classes: int

  @nn.compact
  def __call__(self, images, *, train):
    maxima = nn.Dense(self.num_classes, name='classifier2')(images.max(axis=(1, 2)))
    means = nn.Dense(self.num_classes, name='classifier1')(images.mean(axis=(1, 2)))
    return maxima + means, {}


class NoClassifier(nn.Module):
  """Logits sliced from a Dense of K + 1 units: no Dense layer has K outputs."""
  num_classes: int

  @nn.compact
  def __call__(self, images, *, train):
    return nn.Dense(self.num_classes + 1)(images.mean(axis=(1, 2)))[:, :self.num_classes], {}


class PooledPixels(nn.Module):
  """The classifier reads the 2×2 average-pooled pixels, flattened."""
  num_classes: int

  @nn.compact
  def __call__(self, images, *, train):
    pooled = nn.avg_pool(images, (2, 2), strides=(2, 2))
    return nn.Dense(self.num_classes, name='classifier')(
        pooled.reshape(images.shape[0], -1)), {}


def _images(shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _descriptors(run, images, batch_size):
  return probe.descriptors(probe.descriptor_function(run), run.arrays, images, batch_size, 0)


def _pooled_by_hand(images):
  """float [N, 16]: 2×2 means of uint8 [N, 8, 8, 1] images in [0, 1], row-major."""
  return (images.astype(np.float64) / 255).reshape(len(images), 4, 2, 4, 2).mean(axis=(2, 4)) \
      .reshape(len(images), 16)


def _synthetic_data_config():
  return ml_collections.ConfigDict(dict(
      name='synthetic', data_dir=None, manual_dir=None, zca=False, zca_epsilon=1e-2,
      random_crop_padding=0, random_flip=False, image_size=None, train_split='train',
      validation_split=8, synthetic_image_shape=(8, 8, 1), synthetic_num_classes=4,
      synthetic_num_train=64, synthetic_num_test=20))


def _config(**overrides):
  fields = probe.Probe.default_config().to_dict()
  fields.update(overrides)
  return ml_collections.ConfigDict(fields)


def test_descriptors_are_the_classifier_input(tmp_path):
  run = toy_runs.toy_run(ChannelMeans(3), (4, 4, 2), 3, tmp_path)
  images = _images((5, 4, 4, 2))
  # 5 images in batches of 3: the second batch is padded, and the padding is dropped.
  features = _descriptors(run, images, batch_size=3)
  assert features.shape == (5, 2)
  np.testing.assert_allclose(features, images.mean(axis=(1, 2)) / 255, atol=1e-6)


def test_two_heads_concatenated_in_call_order(tmp_path):
  run = toy_runs.toy_run(TwoHeads(3), (4, 4, 2), 3, tmp_path)
  images = _images((4, 4, 4, 2), seed=1)
  expected = np.concatenate([images.max(axis=(1, 2)), images.mean(axis=(1, 2))], -1) / 255
  np.testing.assert_allclose(_descriptors(run, images, batch_size=4), expected, atol=1e-6)


def test_model_without_classifier_is_refused(tmp_path):
  run = toy_runs.toy_run(NoClassifier(3), (4, 4, 2), 3, tmp_path)
  with pytest.raises(LptaError, match='no Dense layer with 3 outputs'):
    _descriptors(run, _images((2, 4, 4, 2)), batch_size=2)


def test_probe_recovers_a_separable_labelling_only_from_features_that_encode_it():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 3, 400)
  noise = rng.normal(size=(400, 8))
  # Class k puts 2 on feature k (plus noise of std .3): the classes are linearly separable.
  encoding = np.concatenate([2 * np.eye(3)[labels] + .3 * rng.normal(size=(400, 3)), noise], -1)
  train, test = slice(0, 200), slice(200, 400)
  fitted = probe.fit_probe(encoding[train], labels[train], C=1., max_iter=1000)
  assert fitted.score(encoding[test], labels[test]) == 1.
  blind = probe.fit_probe(noise[train], labels[train], C=1., max_iter=1000)
  assert blind.score(noise[test], labels[test]) < .5  # chance is 1/3


def test_probe_of_a_single_class_is_refused():
  with pytest.raises(LptaError, match='max_train_examples'):
    probe.fit_probe(np.ones((4, 2)), np.zeros(4, np.int32), C=1., max_iter=10)


def test_digits_are_the_scaled_bundled_digits():
  digits = datasets.load_digits()
  images = probe.digits_images((8, 8, 1))
  values = digits.images.astype(np.int64)  # 0..16
  assert images['image'].dtype == np.uint8
  np.testing.assert_array_equal(images['image'][..., 0], (values * 255 + 8) // 16)
  np.testing.assert_array_equal(images['label'], digits.target)


def test_digits_split_has_the_run_shape_all_classes_and_the_documented_sizes():
  train, test = probe.digits_split((6, 5, 3), test_fraction=.5, seed=0)
  assert train['image'].shape == (898, 6, 5, 3) and test['image'].shape == (899, 6, 5, 3)
  assert train['image'].dtype == np.uint8 and test['image'].dtype == np.uint8
  for split in (train, test):
    np.testing.assert_array_equal(split['image'][..., 0], split['image'][..., 2])
    assert set(split['label']) == set(range(10))
  # Stratified: each class splits in halves that differ by at most one digit.
  difference = np.bincount(test['label'], minlength=10) - np.bincount(train['label'], minlength=10)
  assert np.abs(difference).max() <= 1
  small_train, small_test = probe.digits_split((6, 5, 3), test_fraction=.2, seed=0)
  assert (len(small_train['label']), len(small_test['label'])) == (1797 - 360, 360)  # ⌈359.4⌉


def test_train_sample_draws_distinct_train_examples():
  dataset = data.get(_synthetic_data_config()).load()
  train_rows = {image.tobytes(): index for index, image in enumerate(
      dataset.shards['train']['image'])}
  assert len(train_rows) == 56  # 64 minus the 8 validation examples, all distinct
  # ⌊56 / 16⌋ = 3 batches of one epoch hold 48 distinct examples; 40 of them are asked for.
  for max_examples, expected in ((40, 40), (100, 48)):
    sample = probe.train_sample(dataset, max_examples, batch_size=16, seed=0)
    indices = [train_rows[image.tobytes()] for image in sample['image']]
    assert len(indices) == expected and len(set(indices)) == expected
    np.testing.assert_array_equal(sample['label'], dataset.shards['train']['label'][indices])


def test_evaluate_run_on_digits_writes_the_documented_files(tmp_path):
  run = toy_runs.toy_run(PooledPixels(4), (8, 8, 1), 4, tmp_path)
  config = _config(batch_size=300)
  results = evaluators.evaluate_run(run, 'probe', config)
  directory = tmp_path / 'eval' / 'probe_digits'
  record = json.loads((directory / 'results.json').read_text())
  assert set(record['results']) == RESULT_KEYS and record['results'] == results
  assert (results['train_examples'], results['test_examples'], results['descriptor_size']) == (
      898, 899, 16)
  with (directory / 'probe.csv').open() as file:
    rows = list(csv.reader(file))
  assert rows[0] == ['features', 'accuracy'] and [row[0] for row in rows[1:]] == [
      'descriptors', 'pixels']
  assert float(rows[1][1]) == results['probe_accuracy']
  assert float(rows[2][1]) == results['pixel_probe_accuracy']
  assert (directory / 'confusion.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  # The same probe on 2×2 means computed by hand scores the same (up to one example).
  train, test = probe.digits_split((8, 8, 1), .5, seed=0)
  by_hand = probe.fit_probe(_pooled_by_hand(train['image']), train['label'], C=1., max_iter=1000)
  assert results['probe_accuracy'] == pytest.approx(
      by_hand.score(_pooled_by_hand(test['image']), test['label']), abs=1.5 / 899)
  assert results['pixel_probe_accuracy'] > .9  # logistic regression on the digits' pixels


def test_evaluate_run_on_own_data_reads_train_and_test_splits(tmp_path):
  run = toy_runs.toy_run(ChannelMeans(4), (8, 8, 1), 4, tmp_path,
                         data_config=_synthetic_data_config())
  config = _config(dataset='own', max_train_examples=40, max_examples=12, batch_size=16,
                   max_iter=200)
  results = evaluators.evaluate_run(run, 'probe', config)
  assert (results['train_examples'], results['test_examples'], results['descriptor_size']) == (
      40, 12, 1)
  assert 0 <= results['probe_accuracy'] <= 1
  assert (tmp_path / 'eval' / 'probe_own' / 'confusion.png').exists()


@pytest.mark.parametrize('field, value', [
    ('dataset', 'cifar10'), ('test_fraction', 0.), ('test_fraction', 1.),
    ('test_fraction', .001), ('test_fraction', True), ('max_train_examples', 0),
    ('max_iter', 0), ('C', 0.), ('C', -1.), ('C', float('inf')), ('batch_size', 0)])
def test_bad_fields_are_named(field, value):
  with pytest.raises(ConfigError, match=rf'^--eval\.{field}='):
    probe.Probe(_config(**{field: value}))


def test_default_config_is_valid():
  assert probe.Probe(probe.Probe.default_config()).config.dataset == 'digits'
