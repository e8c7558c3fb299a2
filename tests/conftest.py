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
