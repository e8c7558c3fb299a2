"""The command line: user errors are one line on stderr and a non-zero exit, nothing written."""

import logging
import os
import pathlib
import subprocess
import sys
import time

from lpta import command_line

REPO_ROOT = pathlib.Path(__file__).parent.parent


def _run_main(tmp_path, *flags):
  env = dict(os.environ, TFDS_DATA_DIR=str(tmp_path / 'tfds'),
             # No network, whatever the test machine has: every request goes to a closed port.
             HTTP_PROXY='http://127.0.0.1:9', HTTPS_PROXY='http://127.0.0.1:9',
             http_proxy='http://127.0.0.1:9', https_proxy='http://127.0.0.1:9')
  if not any(flag.startswith('--workdir=') for flag in flags):
    flags = (f'--workdir={tmp_path / "run"}', *flags)
  start = time.time()
  result = subprocess.run([sys.executable, 'main.py', *flags],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
  return result, time.time() - start


def _last_line(stderr: str) -> str:
  return stderr.strip().splitlines()[-1]


def test_missing_cifar100_exits_fast_with_one_line_on_how_to_prepare_it(tmp_path):
  result, seconds = _run_main(tmp_path, '--config=configs/cifar100_att3.py')
  assert result.returncode == 1
  line = _last_line(result.stderr)
  assert line.startswith('error: ') and 'cifar-100-binary.tar.gz' in line
  assert 'manual_dir' in line
  assert 'Traceback' not in result.stderr
  assert seconds < 60
  assert not (tmp_path / 'run').exists()  # no empty workdir left behind


def test_bad_config_value_exits_with_one_line(tmp_path):
  result, _ = _run_main(tmp_path, '--config=configs/quickstart.py',
                        '--config.model.compatibility=cosine')
  assert result.returncode == 1
  assert _last_line(result.stderr) == (
      "error: config.model.compatibility='cosine' is not valid; use one of pc, dp.")


def test_a_missing_config_file_is_one_line(tmp_path):
  result, seconds = _run_main(tmp_path, '--config=configs/no_such_config.py')
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
      f'error: --config=configs/no_such_config.py: no such file (looked for from {REPO_ROOT}); '
      'pass a config file, e.g. --config=configs/quickstart.py.']
  assert not (tmp_path / 'run').exists()


def test_an_unknown_override_is_one_line_naming_it(tmp_path):
  result, _ = _run_main(tmp_path, '--config=configs/quickstart.py', '--config.model.width=0.5',
                        '--config.data.nmae=cifar10')
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
      'error: --config.data.nmae is not a field of the config (did you mean name?); check its '
      'spelling against the config file (docs/architecture.md says where each field is '
      'declared).']


def test_a_workdir_under_a_file_is_one_line_before_the_data_is_read(tmp_path):
  (tmp_path / 'file').write_text('')
  result, _ = _run_main(tmp_path, '--config=configs/cifar100_att3.py',
                        f'--workdir={tmp_path / "file" / "run"}')
  assert result.returncode == 1
  assert _last_line(result.stderr) == (
      f'error: --workdir={tmp_path / "file" / "run"} cannot be made: {tmp_path / "file"} is a '
      'file, not a folder; choose another --workdir.')
  assert 'Traceback' not in result.stderr
  assert 'cifar-100' not in result.stderr  # refused before looking for the data set


def test_library_info_lines_are_dropped_and_their_warnings_kept():
  def record(pathname, level):
    return logging.LogRecord('absl', level, pathname, 1, 'message', None, None)

  orbax = '/venv/site-packages/orbax/checkpoint/checkpoint_manager.py'
  jax_internal = '/venv/site-packages/jax/_src/xla_bridge.py'
  assert not command_line.drop_library_info(record(orbax, logging.INFO))
  assert not command_line.drop_library_info(record(jax_internal, logging.INFO))
  tfds_reader = '/venv/site-packages/tensorflow_datasets/core/reader.py'
  assert not command_line.drop_library_info(record(tfds_reader, logging.INFO))
  assert command_line.drop_library_info(record(orbax, logging.WARNING))
  read_only = logging.LogRecord('absl', logging.WARNING, orbax, 1,
                                'Given directory is read only=%s', ('/run/checkpoints',), None)
  assert not command_line.drop_library_info(read_only)
  assert command_line.drop_library_info(record('/repo/lpta/train.py', logging.INFO))
