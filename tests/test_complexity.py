"""lpta.evaluators.complexity: the Gini index and the entropy by hand, against other formulas, and
the evaluator's results and files."""

import csv

import numpy as np
import pytest
import scipy.stats

from lpta import evaluators
from lpta.evaluators import complexity
from test_faithfulness import TinyConvNet
from test_faithfulness import _synthetic_data_config
from toy_runs import toy_run


def test_gini_by_hand_and_at_its_bounds():
  maps = np.array([[[0., 0.], [0., 1.]], [[1., 2.], [3., 4.]], [[.5, .5], [.5, .5]],
                   [[0., 0.], [0., 0.]]])
  # Weights 2i − n − 1 = −3, −1, 1, 3: 3 / 4 = (n − 1)/n; (−3 − 2 + 3 + 12) / (4 · 10) = 1/4.
  np.testing.assert_allclose(complexity.gini(maps), [.75, .25, 0., 0.])


def test_gini_equals_the_mean_absolute_difference_over_twice_the_mean():
  maps = np.random.default_rng(0).uniform(0, 1, (5, 6, 7)) ** 3
  values = maps.reshape(5, -1)
  differences = np.abs(values[:, :, None] - values[:, None, :]).mean(axis=(1, 2))
  np.testing.assert_allclose(complexity.gini(maps), differences / (2 * values.mean(axis=1)),
                             rtol=1e-12)


def test_entropy_equals_scipy_and_its_bounds():
  maps = np.random.default_rng(1).uniform(0, 1, (4, 5, 5))
  maps[0] = 0.
  maps[0, 2, 3] = .7  # one non-zero pixel: 0
  maps[1] = 1.        # constant: log 25
  maps[2] = 0.        # all zero: as a constant map
  values = complexity.entropy(maps)
  np.testing.assert_allclose(values[:3], [0., np.log(25), np.log(25)], atol=1e-15)
  np.testing.assert_allclose(values[3], scipy.stats.entropy(maps[3].ravel()), rtol=1e-12)


def test_evaluate_run_gives_the_means_of_its_per_example_scores(tmp_path):
  run = toy_run(TinyConvNet(num_classes=3), (8, 8, 3), 3, tmp_path, maps='map',
                feature_layer='conv', data_config=_synthetic_data_config())
  config = complexity.Complexity.default_config()
  config.update(maps=('attention', 'gradient'), batch_size=4)  # 6 = 4 + 2 padded
  results = evaluators.evaluate_run(run, 'complexity', config)
  assert sorted(results) == sorted(['gini_attention', 'entropy_attention', 'gini_gradient',
                                    'entropy_gradient', 'max_entropy'])
  assert results['max_entropy'] == pytest.approx(np.log(64))
  directory = tmp_path / 'eval' / 'complexity'
  with open(directory / 'per_example.csv') as file:
    rows = list(csv.DictReader(file))
  assert len(rows) == 6
  for name, value in results.items():
    if name != 'max_entropy':
      assert value == pytest.approx(np.mean([float(row[name]) for row in rows]))
      bound = 1 - 1 / 64 if name.startswith('gini') else np.log(64)
      assert all(0 <= float(row[name]) <= bound + 1e-9 for row in rows)
  with open(directory / 'complexity.png', 'rb') as file:
    assert file.read(8) == b'\x89PNG\r\n\x1a\n'
