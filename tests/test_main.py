"""The command line: user errors are one line on stderr and a non-zero exit, nothing written."""

import os
import pathlib
import subprocess
import sys
import time

REPO_ROOT = pathlib.Path(__file__).parent.parent


def _run_main(tmp_path, *flags):
  env = dict(os.environ, TFDS_DATA_DIR=str(tmp_path / 'tfds'),
             # No network, whatever the test machine has: every request goes to a closed port.
             HTTP_PROXY='http://127.0.0.1:9', HTTPS_PROXY='http://127.0.0.1:9',
             http_proxy='http://127.0.0.1:9', https_proxy='http://127.0.0.1:9')
  start = time.time()
  result = subprocess.run([sys.executable, 'main.py', f'--workdir={tmp_path / "run"}', *flags],
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
