"""The whole-image baselines of the glimpse tasks: the context view is the pooled image, and the
networks have the parameters their layers imply."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lpta import families
from lpta.errors import ConfigError

canvas_baseline = importlib.import_module('configs.canvas_baseline')


def test_context_model_is_the_mlp_on_the_average_pooled_canvas():
  context = families.get(canvas_baseline.get_config('translated,context').model).build(
      10, jnp.float32)
  full = context.clone(input_pool=1)
  images = jax.random.normal(jax.random.key(0), (3, 60, 60, 1))
  pooled = images.reshape(3, 12, 5, 12, 5, 1).mean((2, 4))
  variables = context.init(jax.random.key(1), images, train=False)
  np.testing.assert_allclose(context.apply(variables, images, train=False)[0],
                             full.apply(variables, pooled, train=False)[0], rtol=1e-5,
                             atol=1e-5)


@pytest.mark.parametrize('model, expected', [
    # 3600·256 + 256, 256·256 + 256, 256·10 + 10.
    ('fc256', 3600 * 256 + 256 + 256 * 256 + 256 + 2570),
    ('fc64', 3600 * 64 + 64 + 64 * 64 + 64 + 650),
    # 5·5·1·16 + 16, 5·5·16·32 + 32, (15·15·32)·256 + 256, 256·10 + 10.
    ('cnn', 416 + 12_832 + 7200 * 256 + 256 + 2570),
    ('context', 144 * 256 + 256 + 256 * 256 + 256 + 2570),
])
def test_baselines_have_the_parameters_of_their_layers(model, expected):
  network = families.get(canvas_baseline.get_config(f'cluttered,{model}').model).build(
      10, jnp.float32)
  variables, (logits, _) = families.abstract_variables_and_outputs(network, (60, 60, 1))
  assert families.count_parameters(variables['params']) == expected
  assert logits.shape == (1, 10)


def test_random_glimpses_baseline_is_ram_with_a_random_policy():
  config = canvas_baseline.get_config('cluttered,random_glimpses')
  assert (config.model.name, config.model.policy) == ('ram', 'random')
  assert config.data.name == 'cluttered_fashion_mnist' and config.data.clutter_pieces == 4


def test_unknown_baseline_arguments_and_bad_widths_are_refused():
  with pytest.raises(ValueError, match='TASK,MODEL'):
    canvas_baseline.get_config('translated,resnet')
  for model, field, value in (('fc64', 'hidden_units', (64, 0)), ('cnn', 'channels', (16, -1)),
                               ('cnn', 'kernel_size', 0), ('context', 'input_pool', 0)):
    config = canvas_baseline.get_config(f'translated,{model}')
    config.model[field] = value
    with pytest.raises(ConfigError, match=f'config.model.{field}'):
      families.get(config.model)
