"""Two processes = one process: `main.py --multiprocess` on localhost, 2 processes × 2 CPU devices,
against this process's 4 devices.

The processes meet on 127.0.0.1 (jax.distributed with Gloo CPU collectives); every socket stays
on the loopback interface. A deadline and killing the process groups bound the test if a process
hangs.
"""

import importlib.util
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

from lpta import train
from test_train import checkpoint_steps

REPO_ROOT = pathlib.Path(__file__).parent.parent
DEADLINE_S = 420

TESTS_DIR = pathlib.Path(__file__).parent
# test_transfer's WRN-10-1 on 16×16 synthetic images, 2 epochs of 4 steps, every step logged.
CONFIG = f"""
import sys
sys.path.insert(0, {str(TESTS_DIR)!r})
from test_transfer import wrn_config


def get_config():
  return wrn_config(**{{'num_epochs': 2, 'log_every_steps': 1, 'data.validation_split': 16,
                        'data.synthetic_num_train': 80}})
"""

# Runs main.py with Gloo told to listen on the loopback interface (by default it resolves the
# host name, which may name another interface). The hook is private to jax, hence its test-only
# use here.
LAUNCH = '''
import functools, runpy, sys
from jax._src import xla_bridge
xla_bridge._jax.make_gloo_tcp_collectives = functools.partial(
    xla_bridge._jax.make_gloo_tcp_collectives, hostname='127.0.0.1')
sys.argv = ['main.py'] + sys.argv[1:]
runpy.run_path('main.py', run_name='__main__')
'''


def _free_port() -> int:
  with socket.socket() as probe:
    probe.bind(('127.0.0.1', 0))
    return probe.getsockname()[1]


def _run_two_processes(config_path, workdir):
  """Runs the two processes to the end or the deadline; returns their (returncode, output)."""
  port = _free_port()
  env = {name: value for name, value in os.environ.items() if not name.lower().endswith('_proxy')}
  # The same XLA flags as this process (conftest), so both sides compile the same programs.
  env.update(JAX_PLATFORMS='cpu', PYTHONUNBUFFERED='1',
             XLA_FLAGS=f'{os.environ.get("XLA_FLAGS", "")} '
                       '--xla_force_host_platform_device_count=2')
  processes = [subprocess.Popen(
      [sys.executable, '-c', LAUNCH, f'--config={config_path}', f'--workdir={workdir}',
       '--multiprocess', f'--coordinator_address=127.0.0.1:{port}', '--num_processes=2',
       f'--process_id={index}'],
      cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
      start_new_session=True) for index in range(2)]
  deadline, outputs = time.time() + DEADLINE_S, []
  try:
    for process in processes:
      outputs.append(process.communicate(timeout=max(1, deadline - time.time()))[0])
  finally:
    for process in processes:
      if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
  return [(process.returncode, output) for process, output in zip(processes, outputs)]


def _train_losses(workdir: pathlib.Path) -> tuple[int, dict[int, float]]:
  """(number of events files, {step: train_loss})."""
  files = list(workdir.glob('events.out.tfevents.*'))
  losses = {}
  for events in files:
    for event in tf.compat.v1.train.summary_iterator(str(events)):
      for value in event.summary.value:
        if value.tag == 'train_loss':
          losses[event.step] = float(tf.make_ndarray(value.tensor))
  return len(files), losses


def test_two_processes_of_two_devices_train_like_one_process_of_four(tmp_path):
  config_path = tmp_path / 'two_by_two.py'
  config_path.write_text(CONFIG)
  results = _run_two_processes(config_path, tmp_path / 'two')
  for returncode, output in results:
    assert returncode == 0, output[-3000:]
  # Each process holds the 64 training examples, of which it feeds half of every batch, and
  # evaluates half of the 16 validation and 22 test examples.
  for index, (_, output) in enumerate(results):
    assert f'JAX process {index} of 2' in output
    assert "(this process: {'train': 64, 'test': 11, 'validation': 8})" in output
    # Orbax's INFO lines stay out of the log (several per checkpoint otherwise).
    assert 'checkpoint_manager.py' not in output and 'Saving checkpoint' not in output

  spec = importlib.util.spec_from_file_location('two_by_two', config_path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  train.train_and_evaluate(module.get_config(), tmp_path / 'one')  # this process: 4 devices

  # One set of checkpoints, events and figures, written once for both processes.
  assert checkpoint_steps(tmp_path / 'two') == checkpoint_steps(tmp_path / 'one') == [4, 8]
  assert sorted(p.name for p in (tmp_path / 'two' / 'attention').iterdir()) == [
      'step_00000004.png', 'step_00000008.png']
  num_files, two = _train_losses(tmp_path / 'two')
  assert num_files == 1
  _, one = _train_losses(tmp_path / 'one')
  assert sorted(two) == sorted(one) == list(range(1, 9))
  # The same global batches and the same arithmetic per device; only the cross-process sums
  # differ, by an ulp or so.
  np.testing.assert_allclose([two[step] for step in sorted(two)],
                             [one[step] for step in sorted(one)], rtol=1e-5, atol=1e-6)
