"""The XLA:CPU option lpta sets (lpta.xla_cpu): when it is set, and that it computes the same
gradients as XLA's default path."""

import json
import os
import subprocess
import sys

import numpy as np

from lpta import xla_cpu

_REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_OPTION_FLAG = f'--{xla_cpu.OPTION}={xla_cpu.VALUE}'


def test_option_is_appended_for_a_tested_jaxlib():
  assert xla_cpu.flags_with_option('', '0.10.2') == _OPTION_FLAG
  assert (xla_cpu.flags_with_option('--xla_backend_optimization_level=0', '0.10.0')
          == f'--xla_backend_optimization_level=0 {_OPTION_FLAG}')


def test_option_is_left_out_for_another_jaxlib_or_a_user_value():
  assert xla_cpu.flags_with_option('--a=1', '0.11.2') == '--a=1'
  assert xla_cpu.flags_with_option('', '1.0.10') == ''
  user_flags = f'--{xla_cpu.OPTION}='
  assert xla_cpu.flags_with_option(user_flags, '0.10.2') == user_flags


def test_keep_defaults_variable_leaves_the_flags_alone(monkeypatch):
  monkeypatch.setenv('XLA_FLAGS', '--a=1')
  monkeypatch.setenv(xla_cpu.KEEP_DEFAULTS_VARIABLE, '1')
  xla_cpu.configure()
  assert os.environ['XLA_FLAGS'] == '--a=1'


def test_gpu_and_tpu_plugins_are_recognised_by_their_package_names():
  names = ['jax', 'jaxlib', 'jax_cuda13_plugin', 'jax-cuda12-pjrt', 'libtpu', 'libtpu-nightly',
           'jax-rocm7-plugin', 'numpy', 'flax']
  assert xla_cpu.accelerator_packages(names) == [
      'jax-cuda13-plugin', 'jax-cuda12-pjrt', 'libtpu', 'libtpu-nightly', 'jax-rocm7-plugin']
  assert not xla_cpu.accelerator_packages(['jax', 'jaxlib', 'jax-tpu-embedding-docs'])


def test_with_a_gpu_plugin_installed_the_flags_are_left_alone(monkeypatch):
  monkeypatch.setenv('XLA_FLAGS', '--a=1')
  monkeypatch.delenv(xla_cpu.KEEP_DEFAULTS_VARIABLE, raising=False)
  monkeypatch.setattr(xla_cpu, 'installed_distribution_names',
                      lambda: ['jax', 'jaxlib', 'jax-cuda13-plugin'])
  xla_cpu.configure()
  assert os.environ['XLA_FLAGS'] == '--a=1'
  monkeypatch.setattr(xla_cpu, 'installed_distribution_names', lambda: ['jax', 'jaxlib'])
  xla_cpu.configure()
  import jaxlib  # pylint: disable=g-import-not-at-top
  expected = xla_cpu.flags_with_option('--a=1', jaxlib.__version__)
  assert os.environ['XLA_FLAGS'] == expected


def test_the_tests_run_with_the_option_when_runs_do():
  import jaxlib  # pylint: disable=g-import-not-at-top
  expected = (jaxlib.__version__.startswith(xla_cpu.TESTED_JAXLIB_VERSIONS)
              and not xla_cpu.accelerator_packages(xla_cpu.installed_distribution_names()))
  assert (_OPTION_FLAG in os.environ['XLA_FLAGS']) == expected


# float64 parameter gradients of the quickstart's attention VGG (convolutions, BatchNorm,
# max-pools, attention) on random images, in eval mode, printed as {leaf path: values}.
_GRADIENTS = r'''
import json
import jax
jax.config.update('jax_enable_x64', True)
import jax.numpy as jnp
import numpy as np
from configs import quickstart
from lpta import families
model = families.get(quickstart.get_config().model).build(10, jnp.float64)
images = jnp.asarray(np.random.default_rng(0).uniform(size=(8, 28, 28, 1)))
labels = jnp.arange(8) % 10
variables = model.init(jax.random.key(0), images, train=False)
variables = jax.tree.map(lambda a: a.astype(jnp.float64), variables)
def loss(params):
  logits, _ = model.apply({**variables, 'params': params}, images, train=False)
  return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1))
gradients = jax.jit(jax.grad(loss))(variables['params'])
import os
print(json.dumps({'XLA_FLAGS': os.environ.get('XLA_FLAGS', '')}))
print(json.dumps({jax.tree_util.keystr(path): np.asarray(leaf).ravel().tolist()
                  for path, leaf in jax.tree_util.tree_leaves_with_path(gradients)}))
'''


def _start_gradients(with_option: bool) -> subprocess.Popen:
  other_flags = ' '.join(flag for flag in os.environ['XLA_FLAGS'].split()
                         if xla_cpu.OPTION not in flag)
  env = dict(os.environ, XLA_FLAGS=other_flags)
  env[xla_cpu.KEEP_DEFAULTS_VARIABLE] = '0' if with_option else '1'
  return subprocess.Popen([sys.executable, '-c', _GRADIENTS], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, cwd=_REPOSITORY)


def _gradients(process: subprocess.Popen, with_option: bool) -> dict:
  stdout, stderr = process.communicate()
  assert process.returncode == 0, stderr
  *_, flags_line, gradients_line = stdout.strip().splitlines()
  assert (_OPTION_FLAG in json.loads(flags_line)['XLA_FLAGS']) == with_option
  return json.loads(gradients_line)


def test_option_computes_the_default_gradients():
  """Same function, other summation order: in float64 the gradients agree to ~1e-15 of their
  largest value (leaves that are zero in exact arithmetic, e.g. biases before a softmax, are
  rounding noise on that scale); 1e-10 leaves room for depth and lets no wrong gradient through
  (a wrong one is off by ~1e-2 of the scale or more)."""
  default_process, option_process = _start_gradients(False), _start_gradients(True)
  default, with_option = _gradients(default_process, False), _gradients(option_process, True)
  assert default.keys() == with_option.keys() and len(default) > 20
  scale = max(np.abs(values).max() for values in default.values())
  for path in default:
    np.testing.assert_allclose(with_option[path], default[path], rtol=0, atol=1e-10 * scale,
                               err_msg=path)
