"""The model-family interface: a family defined here, and nowhere in lpta, trains, evaluates,
checkpoints, resumes, loads and draws through the unchanged train loop."""

from clu import metrics
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import lpta
from lpta import config_fields as cf
from lpta import families
from lpta import objectives
from lpta import train
from lpta.errors import ConfigError
from test_train import (_interrupt_during_step, checkpoint_steps, event_tags, tiny_config,
                        tree_equal)


class NoisyLinear(nn.Module):
  """Logits = Dense(flatten(x + noise)): no BatchNorm; the noise (training only) draws from
  the 'noise' stream. aux['weight_map'] [B, H, W]: mean |kernel| per pixel."""
  num_classes: int
  noise: float

  @nn.compact
  def __call__(self, images, *, train: bool):
    if train:
      images = images + self.noise * jax.random.normal(self.make_rng('noise'), images.shape)
    dense = nn.Dense(self.num_classes, name='dense')
    logits = dense(images.reshape(images.shape[0], -1))
    weights = jnp.abs(dense.variables['params']['kernel']).mean(-1)
    weight_map = weights.reshape(images.shape[1:]).mean(-1)
    return logits, {'weight_map': jnp.broadcast_to(weight_map, images.shape[:3])}


def brier_score(logits, labels):
  """Per-example Σ_k (softmax(logits)_k − onehot(label)_k)²: [B, K], [B] -> [B]."""
  one_hot = jax.nn.one_hot(labels, logits.shape[-1])
  return jnp.sum(jnp.square(jax.nn.softmax(logits) - one_hot), axis=-1)


class BrierObjective(objectives.Objective):
  """Trains on the Brier score; logs it and the cross-entropy it does not minimise."""
  method = 'brier'

  @property
  def term_names(self):
    return ('brier', 'unused_cross_entropy')

  def __call__(self, student, targets):
    brier = brier_score(student.logits, student.labels).mean()
    return brier, {'brier': brier, 'unused_cross_entropy':
                   objectives.cross_entropy(student.logits, student.labels).mean()}


@flax.struct.dataclass
class BrierMetrics(metrics.Collection):
  brier: metrics.Average.from_output('brier')
  accuracy: metrics.Accuracy


class ToyFamily(families.Family):
  name = 'toy'
  fields = {'noisy_linear': (cf.Field('noise', 0.1, 'σ of the noise added to the images.'),)}
  rng_streams = ('noise',)
  eval_metrics = BrierMetrics

  def validate(self):
    if self.model_config.noise < 0:
      raise ConfigError('config.model.noise must be >= 0.')

  def build(self, num_classes, dtype):
    return NoisyLinear(num_classes, self.model_config.noise)

  def objective(self, config, model, image_shape, teacher=None):
    return BrierObjective(config.transfer)

  def eval_outputs(self, predict, images, batch, rng):
    logits, _ = predict(images, rng)
    return {'brier': brier_score(logits, batch['label']), 'logits': logits,
            'labels': batch['label']}

  def figure_arrays(self, aux):
    weight_map = aux['weight_map']
    return (weight_map / jnp.max(weight_map),)

  def draw_figure(self, images, arrays, teacher_arrays=()):
    """The weight maps alone, one above the other, in grey: [N·H, W, 3]."""
    (weight_map,) = arrays
    return np.repeat(np.concatenate(list(weight_map), axis=0)[..., None], 3, axis=-1)


@pytest.fixture
def toy_family(monkeypatch):
  monkeypatch.setitem(families.REGISTRY, 'noisy_linear', ToyFamily)


def toy_config(**overrides):
  config = tiny_config(**{'data.validation_split': 16, 'data.synthetic_num_train': 80})
  config.model = families.default_config('noisy_linear')
  config.update_from_flattened_dict(overrides)
  return config


def test_a_family_defined_outside_lpta_trains_checkpoints_resumes_loads_and_draws(
    toy_family, tmp_path, monkeypatch):
  config = toy_config()
  uninterrupted, metrics = train.train_and_evaluate(config, tmp_path / 'uninterrupted')

  with monkeypatch.context() as patch:
    _interrupt_during_step(patch, at_call=6)
    with pytest.raises(KeyboardInterrupt):
      train.train_and_evaluate(config, tmp_path / 'resumed')
  assert checkpoint_steps(tmp_path / 'resumed') == [4, 6]
  resumed, resumed_metrics = train.train_and_evaluate(config, tmp_path / 'resumed')
  assert tree_equal(resumed.params, uninterrupted.params)
  assert resumed.batch_stats == {}  # no BatchNorm: nothing saved or restored for it
  assert resumed_metrics == pytest.approx(metrics)

  # Its own objective terms and evaluation metrics, on every split.
  assert set(metrics) == {f'{split}_{name}' for split in ('validation', 'test')
                          for name in ('brier', 'accuracy')}
  assert {'train_brier', 'train_unused_cross_entropy', 'validation_brier', 'test_brier',
          'attention_maps'} <= event_tags(tmp_path / 'uninterrupted')
  assert not (tmp_path / 'uninterrupted' / 'checkpoints' / '8' / 'batch_stats').exists()

  # Its own figure: 2 test images' 16×16 weight maps, one above the other, not enlarged.
  from PIL import Image  # pylint: disable=g-import-not-at-top
  figure = Image.open(tmp_path / 'uninterrupted' / 'attention' / 'step_00000008.png')
  assert figure.size == (16, 2 * 16)

  # Loaded like any run; its predictions give the test metrics the loop computed.
  run = lpta.load_run(tmp_path / 'uninterrupted')
  assert isinstance(run.family, ToyFamily) and 'batch_stats' not in run.variables
  from lpta import data  # pylint: disable=g-import-not-at-top
  test = data.get(config.data).load().shards['test']
  logits, _ = run.predict(test['image'])
  np.testing.assert_allclose(metrics['test_brier'],
                             np.mean(brier_score(logits, test['label'])), rtol=1e-5)


def test_the_families_model_names_are_the_valid_model_names(toy_family):
  assert {'attention_vgg', 'vgg', 'wrn', 'resnet', 'noisy_linear'} <= set(families.REGISTRY)
  assert ToyFamily.model_names == ('noisy_linear',)
  assert families.default_config('noisy_linear').to_dict() == {'name': 'noisy_linear',
                                                               'noise': 0.1}
  with pytest.raises(ConfigError, match='config.model.noise must be >= 0'):
    families.get(ml_collections.ConfigDict({'name': 'noisy_linear', 'noise': -1.}))
  with pytest.raises(ConfigError, match=r"config.model.name='noisy_linear' needs "
                                        r'config.model.noise'):
    families.get(ml_collections.ConfigDict({'name': 'noisy_linear'}))


def test_registering_a_taken_model_name_is_refused():
  class Impostor(ToyFamily):
    model_names = ('wrn',)

  with pytest.raises(ValueError, match="model name 'wrn' is already registered"):
    families.register(Impostor)
