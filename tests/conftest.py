"""Test session setup: four CPU devices, so the sharded code paths run on every test machine, and
fast compilation.

Compiling dominates the tests' time (the tiny models run a few steps), so XLA's costly CPU
optimisations are off: initialisation and the train step of the tiny attention VGG compile in
seconds instead of a minute on 2 cores. The programs compute the same functions, only more
slowly; the benchmark (lpta.benchmark), not the tests, measures speed. Many tests also compile
the same programs (and the command-line tests compile them again in subprocesses), so JAX's
persistent compilation cache, in a folder of this session only, compiles each once. lpta is
imported right after these settings and before anything is computed, so the XLA:CPU option it
sets (lpta.xla_cpu) holds here as in runs. The environment variables reach the subprocesses the
tests start.
"""

import os
import shutil
import socket
import tempfile

import jax
import pytest

NUM_TEST_DEVICES = 4
jax.config.update('jax_num_cpu_devices', NUM_TEST_DEVICES)

FAST_COMPILE_XLA_FLAGS = ('--xla_backend_optimization_level=0 '
                          '--xla_llvm_disable_expensive_passes=true '
                          '--xla_cpu_use_fusion_emitters=false')
os.environ['XLA_FLAGS'] = f'{os.environ.get("XLA_FLAGS", "")} {FAST_COMPILE_XLA_FLAGS}'.strip()
_CACHE_DIR = tempfile.mkdtemp(prefix='lpta-test-jax-cache-')
os.environ['JAX_COMPILATION_CACHE_DIR'] = _CACHE_DIR
os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
jax.config.update('jax_compilation_cache_dir', _CACHE_DIR)
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
import lpta  # pylint: disable=unused-import,wrong-import-position  (sets the XLA:CPU option)


def pytest_sessionfinish(session, exitstatus):
  del session, exitstatus
  shutil.rmtree(_CACHE_DIR, ignore_errors=True)


@pytest.fixture
def offline(monkeypatch):
  """Makes every host name lookup fail, as on a machine without network."""

  def fail(*args, **kwargs):
    raise socket.gaierror(socket.EAI_NONAME, 'Name or service not known (test)')

  monkeypatch.setattr(socket, 'getaddrinfo', fail)


@pytest.fixture(scope='session')
def finished_run(tmp_path_factory):
  """A finished 2-epoch run of test_train's tiny attention VGG with a 16-image validation
  split: (workdir, final state, final metrics). Tests may resume it but not change it."""
  from test_train import tiny_config  # pylint: disable=g-import-not-at-top
  from lpta import train  # pylint: disable=g-import-not-at-top
  workdir = tmp_path_factory.mktemp('finished') / 'run'
  config = tiny_config(**{'data.validation_split': 16, 'data.synthetic_num_train': 80})
  state, metrics = train.train_and_evaluate(config, workdir)
  return workdir, state, metrics
