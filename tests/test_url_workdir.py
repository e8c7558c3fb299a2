"""A gs:// workdir is a URL everywhere: main.py trains into a bucket, lpta.load_run reads it back
from another folder, a rerun resumes from it, and no local folder named `gs:` ever appears.

The bucket lives in fake-gcs-server on 127.0.0.1 (tests/gcs_emulator.py). The lpta commands run
as child processes with an environment that points every GCS client (Orbax's TensorStore and
google-cloud-storage, TensorFlow's filesystem under tf.summary and etils.epath) at it; this
process's environment is left alone. One deadline for all the commands, and killing their
process groups, bound the test if a command hangs.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

import gcs_emulator
from lpta import checkpoints
from test_train import tiny_config

# JAX warns at every fork of a multithreaded process. The children here exec at once; between
# fork and exec they run only gcs_emulator.die_with_parent, one prctl call looked up before.
pytestmark = pytest.mark.filterwarnings('ignore:os.fork\\(\\) was called:RuntimeWarning')

REPO_ROOT = pathlib.Path(__file__).parent.parent
TESTS_DIR = pathlib.Path(__file__).parent
DEADLINE_S = 110  # for all the commands of this module together
BUCKET = 'lpta-url-workdir'
WORKDIR = f'gs://{BUCKET}/run'
CONFIG_OVERRIDES = {'data.validation_split': 16, 'data.synthetic_num_train': 80}
# test_train's tiny VGG, 1 epoch of 4 steps: one checkpoint, at step 4.
CONFIG = f"""
import sys
sys.path.insert(0, {str(TESTS_DIR)!r})
from test_train import tiny_config


def get_config():
  return tiny_config(num_epochs=1, **{CONFIG_OVERRIDES!r})
"""
CHECKPOINT_ARRAYS = ('params', 'batch_stats', 'opt_state', 'normalisation')
CHECKPOINT_JSONS = ('progress', 'config', 'dataset', 'version')
LOAD_RUN = f"""
import json
import numpy as np
import lpta
run = lpta.load_run({WORKDIR!r}, step='best')
logits, _ = run.predict(np.zeros((2, *run.image_shape), np.uint8))
print('RESULT', json.dumps({{'step': run.step, 'checkpoint': run.checkpoint,
                             'image_shape': run.image_shape, 'logits_shape': logits.shape,
                             'finite': bool(np.isfinite(logits).all())}}))
"""


@pytest.fixture(scope='module')
def gcs(tmp_path_factory):
  """The fake GCS with an empty bucket; its `env` is the environment of the commands."""
  # The commands inherit conftest's fast-compilation flags and compilation cache.
  with gcs_emulator.FakeGcs(tmp_path_factory.mktemp('fake_gcs'), BUCKET) as fake:
    fake.env.update(JAX_PLATFORMS='cpu', PYTHONUNBUFFERED='1')
    yield fake
    door_log = pathlib.Path(fake.door_log).read_text()
  # Every client asked the door for the two GCS hosts only (no metadata server, no OAuth).
  assert 'REFUSED' not in door_log, door_log
  assert 'CONNECT www.googleapis.com:443' in door_log  # TensorFlow's writes went through it


@pytest.fixture(scope='module')
def deadline():
  return time.monotonic() + DEADLINE_S


def _run(gcs, deadline, command, cwd):
  """(exit status, output) of `command` with the fake GCS, in a process group of its own that is
  killed at the deadline (or if the test is interrupted)."""
  process = subprocess.Popen(command, cwd=cwd, env=gcs.env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True,
                             preexec_fn=gcs_emulator.die_with_parent)
  try:
    output = process.communicate(timeout=max(1, deadline - time.monotonic()))[0]
  except subprocess.TimeoutExpired:
    os.killpg(process.pid, signal.SIGKILL)
    output = process.communicate()[0]
    pytest.fail(f'{command[1]} ran past the {DEADLINE_S} s deadline; its output:\n'
                f'{output[-3000:]}\n{gcs.logs()[-3000:]}', pytrace=False)
  finally:
    if process.poll() is None:  # interrupted
      os.killpg(process.pid, signal.SIGKILL)
      process.wait()
  return process.returncode, output


def _main(gcs, deadline, config_path) -> str:
  """main.py's output; it ran from the repository root and succeeded."""
  returncode, output = _run(
      gcs, deadline,
      [sys.executable, 'main.py', f'--config={config_path}', f'--workdir={WORKDIR}'], REPO_ROOT)
  assert returncode == 0, output[-5000:] + gcs.logs()[-3000:]
  return output


def _snapshot(gcs) -> dict[str, tuple[str, str]]:
  """{object name: (generation, MD5)} of the whole bucket."""
  return {name: (item['generation'], item['md5Hash']) for name, item in gcs.objects().items()}


def _assert_no_local_gs_folder(*folders):
  for folder in folders:
    found = [name for name in os.listdir(folder) if name.startswith('gs:')]
    assert not found, f'{WORKDIR} became a local folder: {pathlib.Path(folder, found[0])}'


def _expected_config():
  return json.loads(tiny_config(num_epochs=1, **CONFIG_OVERRIDES).to_json_best_effort())


@pytest.fixture(scope='module')
def trained(gcs, deadline, tmp_path_factory):
  """A run trained into the bucket: (config file, main.py's output, bucket snapshot)."""
  folder = tmp_path_factory.mktemp('url_workdir')
  config_path = folder / 'tiny_one_epoch.py'
  config_path.write_text(CONFIG)
  output = _main(gcs, deadline, config_path)
  _assert_no_local_gs_folder(REPO_ROOT, folder)
  return config_path, output, _snapshot(gcs)


def test_main_writes_checkpoint_events_figure_and_config_into_the_bucket(gcs, trained, tmp_path):
  _, output, objects = trained
  assert 'Step 4 (epoch 1.0' in output  # it trained and evaluated
  assert all(name.startswith('run/') for name in objects), sorted(objects)
  events = [name for name in objects if name.startswith('run/events.out.tfevents.')]
  assert len(events) == 1, sorted(objects)
  assert {name.split('/')[1] for name in objects} - {''} == {
      'attention', 'checkpoints', 'config.json', 'metrics.json', events[0].split('/')[1]}

  # One checkpoint, of the last step, committed, with every item.
  assert {name.split('/')[2] for name in objects
          if name.startswith('run/checkpoints/')} - {''} == {'4'}
  step = 'run/checkpoints/4'
  assert {f'{step}/_CHECKPOINT_METADATA', f'{step}/commit_success.txt'} <= objects.keys()
  for item in CHECKPOINT_ARRAYS:
    assert f'{step}/{item}/_METADATA' in objects, item
    assert any(name.startswith(f'{step}/{item}/ocdbt.process_0/d/') for name in objects), item
  for item in CHECKPOINT_JSONS:
    assert f'{step}/{item}/metadata' in objects, item
  assert json.loads(gcs.read(f'{step}/progress/metadata')) == {'step': 4}
  assert json.loads(gcs.read(f'{step}/config/metadata')) == _expected_config()
  assert json.loads(gcs.read(f'{step}/dataset/metadata'))['image_shape'] == [16, 16, 3]

  assert json.loads(gcs.read('run/metrics.json')) == {'4': pytest.approx(
      json.loads(gcs.read(f'{step}/metrics/metrics')))}
  assert json.loads(gcs.read('run/config.json')) == {
      'lpta_version': checkpoints.lpta_version(), **_expected_config()}
  assert json.loads(gcs.read(f'{step}/version/metadata')) == checkpoints.lpta_version()
  assert gcs.read('run/attention/step_00000004.png').startswith(b'\x89PNG\r\n\x1a\n')
  # The events file is whole: TensorFlow flushed it into the bucket before main.py exited.
  local_events = tmp_path / 'events'
  local_events.write_bytes(gcs.read(events[0]))
  tags = {value.tag for event in tf.compat.v1.train.summary_iterator(str(local_events))
          for value in event.summary.value}
  assert {'train_loss', 'validation_accuracy', 'test_accuracy', 'attention_maps'} <= tags


def test_load_run_reads_the_bucket_from_another_folder_and_writes_nothing(gcs, deadline, trained,
                                                                            tmp_path):
  before = _snapshot(gcs)
  returncode, output = _run(gcs, deadline, [sys.executable, '-c', LOAD_RUN], tmp_path)
  assert returncode == 0, output[-5000:]
  result = json.loads(output.split('RESULT ', 1)[1].splitlines()[0])
  assert result == {'step': 4, 'checkpoint': f'{WORKDIR}/checkpoints/4',
                    'image_shape': [16, 16, 3], 'logits_shape': [2, 4], 'finite': True}
  assert _snapshot(gcs) == before
  _assert_no_local_gs_folder(tmp_path)


def test_rerunning_main_resumes_from_the_bucket_and_adds_only_an_events_file(gcs, deadline,
                                                                             trained):
  config_path, _, _ = trained
  before = _snapshot(gcs)
  output = _main(gcs, deadline, config_path)
  assert f'{WORKDIR} already holds the final checkpoint (step 4); nothing to train.' in output
  after = _snapshot(gcs)
  added = sorted(after.keys() - before.keys())
  assert before.keys() <= after.keys()
  assert len(added) <= 1 and all(name.startswith('run/events.out.tfevents.') for name in added)
  # Only config.json is written again, with the same bytes.
  changed = [name for name in before if after[name] != before[name]]
  assert changed in ([], ['run/config.json']), changed
  assert after['run/config.json'][1] == before['run/config.json'][1]
  _assert_no_local_gs_folder(REPO_ROOT, config_path.parent)
