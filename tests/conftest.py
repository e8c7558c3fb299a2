"""Test session setup: four CPU devices, so the sharded code paths run on every test machine."""

import socket

import jax
import pytest

NUM_TEST_DEVICES = 4
jax.config.update('jax_num_cpu_devices', NUM_TEST_DEVICES)


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
