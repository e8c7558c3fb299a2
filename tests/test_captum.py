"""lpta.attributions against Captum (the PyTorch attribution library) on the quickstart network's
PyTorch twin with lpta's parameters copied in, in inference mode, one target class per image.

Both sides compute in float32 in different orders (XLA vs oneDNN); the tolerance is that of
tests/test_pytorch_equivalents.py for gradients (1e-4 of the largest magnitude plus 2e-3
relative). SmoothGrad draws its own noise on each side, so it is not compared here.
"""

import captum.attr
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from configs import quickstart
from lpta import attributions
from lpta import families
from lpta import pytorch_equivalents
import toy_runs

SHAPE = (28, 28, 1)


@pytest.fixture(name='pair', scope='module')
def fixture_pair(tmp_path_factory):
  """(lpta run, PyTorch twin in eval mode, pixels [4, 28, 28, 1] in [0, 1], targets [4])."""
  config = quickstart.get_config()
  model = families.create_model(config.model, 10)
  variables = model.init(jax.random.key(0), jnp.zeros((1, *SHAPE)), train=False)
  run = toy_runs.toy_run(model, SHAPE, 10, tmp_path_factory.mktemp('run'), variables=variables)
  twin = pytorch_equivalents.build(config.model, SHAPE, 10)
  pytorch_equivalents.load_flax_parameters(twin, variables['params'])
  twin.eval()  # running statistics: the initial mean 0 and variance 1 on both sides
  pixels = np.random.default_rng(0).uniform(0, 1, (4, *SHAPE)).astype(np.float32)
  return run, twin, pixels, np.array([3, 0, 7, 7])


def _lpta(pair, method, **settings):
  run, _, pixels, targets = pair
  function = attributions.attribution_function(run, method, attributions.Settings(**settings))
  return np.asarray(jax.jit(function)(run.arrays, jnp.asarray(pixels), jnp.asarray(targets),
                                      jax.random.key(0)))


def _captum(pair, captum_class, **arguments):
  _, twin, pixels, targets = pair
  inputs = torch.from_numpy(pixels).permute(0, 3, 1, 2).requires_grad_()
  values = captum_class(twin).attribute(inputs, target=torch.from_numpy(targets), **arguments)
  return values.detach().permute(0, 2, 3, 1).numpy()


def _assert_close(actual, expected):
  assert actual.shape == expected.shape
  np.testing.assert_allclose(actual, expected, rtol=2e-3,
                             atol=1e-4 * float(np.max(np.abs(expected))))


def test_the_twins_logits_in_inference_mode_are_lptas(pair):
  run, twin, pixels, _ = pair
  logits, _ = run.apply(run.arrays, jnp.asarray(pixels))
  with torch.no_grad():
    twin_logits = twin(torch.from_numpy(pixels).permute(0, 3, 1, 2)).numpy()
  _assert_close(np.asarray(logits), twin_logits)


def test_gradient_is_captums_saliency_without_the_absolute_value(pair):
  _assert_close(_lpta(pair, 'gradient'), _captum(pair, captum.attr.Saliency, abs=False))


def test_gradient_x_input_is_captums(pair):
  _assert_close(_lpta(pair, 'gradient_x_input'), _captum(pair, captum.attr.InputXGradient))


def test_integrated_gradients_is_captums_gauss_legendre(pair):
  lpta = _lpta(pair, 'integrated_gradients', steps=8, chunk=3)
  theirs = _captum(pair, captum.attr.IntegratedGradients, baselines=0., n_steps=8,
                   method='gausslegendre')
  # At 8 points of the path some ReLU or max-pool input lies within rounding of its kink and
  # takes the other branch on one side, which moves the pixels behind it: all but 2% of the
  # pixels agree to the gradient tolerance, every one to 1% of the largest attribution, and
  # the totals (f(x) − f(0) as quadrature gives it) to 1e-3.
  scale = float(np.max(np.abs(theirs)))
  close = np.isclose(lpta, theirs, rtol=2e-3, atol=1e-4 * scale)
  assert close.mean() > 0.98
  np.testing.assert_allclose(lpta, theirs, rtol=0, atol=1e-2 * scale)
  np.testing.assert_allclose(lpta.sum(axis=(1, 2, 3)), theirs.sum(axis=(1, 2, 3)), rtol=1e-3,
                             atol=1e-3 * scale)


def test_occlusion_is_captums(pair):
  _assert_close(_lpta(pair, 'occlusion', window=4, stride=3, chunk=16),
                _captum(pair, captum.attr.Occlusion, sliding_window_shapes=(1, 4, 4),
                        strides=(1, 3, 3), baselines=0.))
