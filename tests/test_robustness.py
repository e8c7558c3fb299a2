"""FGSM and PGD in the pixel domain (lpta.evaluators.robustness) on tiny toy runs."""

import csv
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import common
from lpta import evaluators
from lpta import objectives
from lpta import runs
from lpta.errors import ConfigError
from lpta.evaluators import robustness
from toy_runs import toy_run

IMAGE_SHAPE = (6, 6, 1)
NUM_CLASSES = 3


class Linear(nn.Module):
  """logits = flatten(x) · W, no bias."""
  num_classes: int = NUM_CLASSES

  @nn.compact
  def __call__(self, images, *, train):
    del train
    flat = images.reshape(images.shape[0], -1)
    return nn.Dense(self.num_classes, use_bias=False)(flat), {}


class TinyConv(nn.Module):
  """A nonlinear model whose input gradient is nonzero at every pixel (tanh, no dead units)."""
  num_classes: int = NUM_CLASSES

  @nn.compact
  def __call__(self, images, *, train):
    del train
    features = jnp.tanh(nn.Conv(4, (3, 3))(images))
    return nn.Dense(self.num_classes)(features.reshape(images.shape[0], -1)), {}


def synthetic_data(num_test=10):
  data = common.get_config().data
  data.name = 'synthetic'
  data.synthetic_image_shape = IMAGE_SHAPE
  data.synthetic_num_classes = NUM_CLASSES
  data.synthetic_num_train = 8
  data.synthetic_num_test = num_test
  return data


def linear_run(workdir, seed=0, data_config=None, num_classes=NUM_CLASSES):
  kernel = np.random.default_rng(seed).normal(
      size=(int(np.prod(IMAGE_SHAPE)), num_classes)).astype(np.float32)
  return toy_run(Linear(num_classes), IMAGE_SHAPE, num_classes, workdir,
                 variables={'params': {'Dense_0': {'kernel': jnp.asarray(kernel)}}},
                 data_config=data_config)


def config_of(name, **fields):
  config = evaluators.get_class(name).default_config()
  config.update(fields)
  return config


def pixels_and_labels(count, low=0.3, high=0.7, seed=1):
  rng = np.random.default_rng(seed)
  pixels = rng.uniform(low, high, (count, *IMAGE_SHAPE)).astype(np.float32)
  return jnp.asarray(pixels), jnp.asarray(rng.integers(0, NUM_CLASSES, count, dtype=np.int32))


def summed_loss(run, pixels, labels):
  logits, _ = run.apply(run.arrays, pixels)
  return float(objectives.cross_entropy(logits, labels).sum())


def test_fgsm_at_zero_epsilon_is_the_clean_accuracy_with_padding_excluded(tmp_path):
  # 10 examples in batches of 4: 2 padded examples (zero image, label 0) that a linear model
  # without bias would get right (all logits 0, argmax 0) if they counted.
  run = linear_run(tmp_path / 'run', data_config=synthetic_data())
  config = config_of('fgsm', epsilons=(0., 0.1), max_examples=10, batch_size=4)
  examples = evaluators.examples(run, config)
  logits, _ = run.predict(examples['image'])
  clean = float(np.mean(np.argmax(logits, -1) == examples['label']))
  accuracies = robustness.FGSM(config).accuracies(run, examples)
  assert accuracies[0] == pytest.approx(clean, abs=1e-6)
  assert accuracies[1] <= clean


def test_fgsm_perturbation_has_max_norm_epsilon(tmp_path):
  run = toy_run(TinyConv(), IMAGE_SHAPE, NUM_CLASSES, tmp_path)
  pixels, labels = pixels_and_labels(5)
  epsilon = 0.05
  adversarial = robustness.fgsm(run, run.arrays, pixels, labels, epsilon, jax.random.key(0))
  delta = np.abs(np.asarray(adversarial - pixels)).reshape(5, -1)
  np.testing.assert_allclose(delta.max(axis=1), epsilon, atol=1e-6)
  np.testing.assert_allclose(delta, epsilon, atol=1e-6)  # every pixel moves by ±ε
  assert summed_loss(run, adversarial, labels) > summed_loss(run, pixels, labels)


def linear_cross_entropy_gradient(run, pixels, labels):
  """∂CE/∂x [B, D] of the linear model by hand, in float64: W (softmax(xW) − onehot(y))."""
  kernel = np.asarray(run.variables['params']['Dense_0']['kernel'], np.float64)  # W [D, K]
  logits = np.asarray(pixels, np.float64).reshape(len(labels), -1) @ kernel
  probabilities = np.exp(logits - logits.max(1, keepdims=True))
  probabilities /= probabilities.sum(1, keepdims=True)
  return (probabilities - np.eye(kernel.shape[1])[np.asarray(labels)]) @ kernel.T


def test_fgsm_on_linear_model_is_epsilon_times_sign_of_hand_gradient(tmp_path):
  run = linear_run(tmp_path)
  pixels, labels = pixels_and_labels(4)
  gradient = linear_cross_entropy_gradient(run, pixels, labels)
  epsilon = 0.03
  adversarial = robustness.fgsm(run, run.arrays, pixels, labels, epsilon, jax.random.key(0))
  np.testing.assert_allclose(np.asarray(adversarial - pixels).reshape(4, -1),
                             epsilon * np.sign(gradient), atol=1e-6)


def test_pgd_on_linear_model_follows_hand_computed_steps(tmp_path):
  # 3 steps of α = 2.5·ε/3 from x, each projected on the ε-ball and [0, 1], by hand.
  run = linear_run(tmp_path)
  pixels, labels = pixels_and_labels(4, low=0., high=1.)
  epsilon, steps, factor = 0.1, 3, 2.5
  x = original = np.asarray(pixels, np.float64).reshape(4, -1)
  for _ in range(steps):
    x = x + factor * epsilon / steps * np.sign(linear_cross_entropy_gradient(run, x, labels))
    x = np.clip(np.clip(x, original - epsilon, original + epsilon), 0., 1.)
  adversarial = robustness.pgd(run, run.arrays, pixels, labels, epsilon, jax.random.key(0),
                               steps=steps, step_size_factor=factor)
  np.testing.assert_allclose(np.asarray(adversarial).reshape(4, -1), x, atol=1e-6)


def test_pgd_with_one_step_of_epsilon_and_no_random_start_is_fgsm(tmp_path):
  run = toy_run(TinyConv(), IMAGE_SHAPE, NUM_CLASSES, tmp_path)
  pixels, labels = pixels_and_labels(6, low=0., high=1.)
  rng = jax.random.key(3)
  expected = robustness.fgsm(run, run.arrays, pixels, labels, 0.1, rng)
  actual = robustness.pgd(run, run.arrays, pixels, labels, 0.1, rng, steps=1,
                          step_size_factor=1.)
  np.testing.assert_allclose(actual, expected, atol=1e-7)


def test_pgd_and_fgsm_evaluators_agree_for_one_step_without_random_start(tmp_path):
  run = linear_run(tmp_path, data_config=synthetic_data())
  fields = dict(epsilons=(0., 0.05, 0.3), max_examples=10, batch_size=4)
  examples = evaluators.examples(run, config_of('fgsm', **fields))
  pgd = robustness.PGD(config_of('pgd', steps=1, step_size_factor=1., random_start=False,
                                 **fields))
  fgsm = robustness.FGSM(config_of('fgsm', **fields))
  assert pgd.accuracies(run, examples) == fgsm.accuracies(run, examples)


def test_pgd_stays_in_the_epsilon_ball_and_the_unit_range(tmp_path):
  run = linear_run(tmp_path)
  pixels, labels = pixels_and_labels(8, low=0., high=1.)
  pixels = pixels.at[0].set(0.).at[1].set(1.)  # images on the bounds
  epsilon = 0.1
  adversarial = robustness.pgd(run, run.arrays, pixels, labels, epsilon, jax.random.key(0),
                               steps=5, step_size_factor=2.5, start_rng=jax.random.key(1))
  delta = np.abs(np.asarray(adversarial - pixels))
  assert delta.max() <= epsilon + 1e-6
  assert delta.max() == pytest.approx(epsilon, abs=1e-6)  # it reaches the ball's surface
  assert np.asarray(adversarial).min() >= 0. and np.asarray(adversarial).max() <= 1.
  assert summed_loss(run, adversarial, labels) > summed_loss(run, pixels, labels)


def test_epsilon_is_traced_so_one_compilation_serves_every_positive_epsilon(tmp_path):
  traces = []

  class CountingFGSM(robustness.FGSM):

    def attack(self, *args):
      traces.append(1)
      return super().attack(*args)

  run = linear_run(tmp_path, data_config=synthetic_data())
  config = config_of('fgsm', epsilons=(0., 0.1, 0.2), max_examples=10, batch_size=4)
  CountingFGSM(config).accuracies(run, evaluators.examples(run, config))
  assert len(traces) == 1  # ε = 0 is not attacked; 0.1 and 0.2 share one trace


def test_evaluate_run_writes_results_csv_and_plot_of_both_runs(tmp_path, monkeypatch):
  run = linear_run(tmp_path / 'main', data_config=synthetic_data())
  # The compared run has no data of its own: it must be attacked on the main run's examples.
  other = linear_run(tmp_path / 'other', seed=7)
  loaded = []

  def load_run(workdir, step):
    loaded.append((workdir, step))
    return other

  monkeypatch.setattr(runs, 'load_run', load_run)
  config = config_of('fgsm', epsilons=(0., 0.1), max_examples=10, batch_size=4,
                     compare_workdirs=(str(tmp_path / 'other'),), compare_step='12')
  results = evaluators.evaluate_run(run, 'fgsm', config)
  assert loaded == [(str(tmp_path / 'other'), 12)]
  assert set(results) == {'accuracy_eps_0', 'accuracy_eps_0.1'}

  output = tmp_path / 'main' / 'eval' / 'fgsm'
  record = json.loads((output / 'results.json').read_text())
  assert record['results'] == results
  with (output / 'accuracy.csv').open() as file:
    rows = list(csv.DictReader(file))
  assert [(row['run'], float(row['epsilon'])) for row in rows] == [
      (robustness.run_label(run), 0.), (robustness.run_label(run), 0.1),
      (robustness.run_label(other), 0.), (robustness.run_label(other), 0.1)]
  assert [float(row['accuracy']) for row in rows[:2]] == pytest.approx(
      [results['accuracy_eps_0'], results['accuracy_eps_0.1']])
  examples = evaluators.examples(run, config)
  other_logits, _ = other.predict(examples['image'])
  other_clean = np.mean(np.argmax(other_logits, -1) == examples['label'])
  assert float(rows[2]['accuracy']) == pytest.approx(other_clean)
  assert (output / 'accuracy.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_compared_run_with_other_classes_is_refused(tmp_path, monkeypatch):
  run = linear_run(tmp_path / 'main', data_config=synthetic_data())
  monkeypatch.setattr(runs, 'load_run',
                      lambda workdir, step: linear_run(workdir, num_classes=NUM_CLASSES + 1))
  config = config_of('fgsm', compare_workdirs=(str(tmp_path / 'other'),))
  with pytest.raises(ConfigError, match=r'^--eval.compare_workdirs: .* with 4 classes'):
    evaluators.evaluate_run(run, 'fgsm', config)
  assert not (tmp_path / 'main' / 'eval' / 'fgsm' / 'results.json').exists()


@pytest.mark.parametrize('name, field, value', [
    ('fgsm', 'epsilons', ()),
    ('fgsm', 'epsilons', (0., 1.5)),
    ('fgsm', 'epsilons', (0.1, 0.1)),
    ('fgsm', 'compare_workdirs', 'runs/a'),
    ('fgsm', 'compare_workdirs', ('',)),
    ('fgsm', 'compare_step', 'first'),
    ('fgsm', 'compare_step', -1),
    ('fgsm', 'steps', 3),  # a pgd field
    ('pgd', 'steps', 0),
    ('pgd', 'step_size_factor', 0.),
    ('pgd', 'random_start', 'yes'),
    ('pgd', 'max_examples', 0),
])
def test_bad_field_gives_config_error_naming_it(name, field, value):
  fields = evaluators.get_class(name).default_config().to_dict()
  config = ml_collections.ConfigDict({**fields, field: value})
  with pytest.raises(ConfigError, match=rf'^--eval\.{field}\b') as error:
    evaluators.get_class(name)(config)
  assert '\n' not in str(error.value)


def test_default_configs_are_valid_and_pgd_adds_its_fields():
  fgsm = robustness.FGSM.default_config()
  pgd = robustness.PGD.default_config()
  robustness.FGSM(fgsm)
  robustness.PGD(pgd)
  assert set(pgd) - set(fgsm) == {'steps', 'step_size_factor', 'random_start'}
  assert (pgd.steps, pgd.step_size_factor, pgd.random_start) == (10, 2.5, True)
