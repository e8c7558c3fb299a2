"""lpta.accelerator_check --quick on the 4 test devices: every part runs, the report is written,
the multi-device step check passes and would catch a different step."""

import json
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from lpta import accelerator_check
from lpta import train
from lpta.errors import DataError

REPO_ROOT = pathlib.Path(__file__).parent.parent
EXPECTED_ENTRIES = {(config, dtype) for config in ('configs/cifar100_att3.py',
                                                   'configs/imagenet_resnet.py')
                    for dtype in ('bfloat16', 'float32')}


@pytest.fixture(scope='module')
def quick_check(tmp_path_factory):
  """(workdir, the report returned, the lines printed) of one quick check."""
  workdir = tmp_path_factory.mktemp('accelerator_check') / 'check'
  lines = []
  report = accelerator_check.run_check(workdir, quick=True, out=lines.append)
  return workdir, report, lines


def _benchmark_rows(markdown: str) -> list[list[str]]:
  """The cells of the benchmark table's rows (those whose command runs lpta.benchmark)."""
  return [[cell.strip() for cell in line.strip('|').split(' | ')]
          for line in markdown.splitlines()
          if line.startswith('|') and 'python -m lpta.benchmark' in line]


def test_the_step_on_four_devices_matches_the_step_on_one(quick_check):
  _, report, _ = quick_check
  row = report['step_check']
  assert row['num_devices'] == jax.local_device_count() == 4
  assert row['batch_size'] == 32
  assert row['largest_parameter_update'] > 0 and row['loss'] > 0
  assert row['params_tolerance'] == pytest.approx(
      accelerator_check.RTOL * row['largest_parameter_update'])
  assert row['max_abs_params_difference'] < row['params_tolerance']
  assert row['abs_loss_difference'] < row['loss_tolerance']
  assert row['passed'] is True


def test_another_batch_in_the_second_step_is_detected():
  comparison = accelerator_check.StepComparison(
      accelerator_check.make_plan(quick=True).step_check.config())
  one_device = jax.local_devices()[:1]
  reference = comparison.step(one_device)
  # Repeating the step reproduces it exactly; what differs below is the batch only.
  same = accelerator_check.compare_steps(comparison.state.params, reference,
                                         comparison.step(one_device))
  assert same['max_abs_params_difference'] == same['abs_loss_difference'] == 0
  assert same['passed']
  other_batch = {'image': comparison.batch['image'][::-1].copy(),
                 'label': np.roll(comparison.batch['label'], 1)}
  other = accelerator_check.compare_steps(comparison.state.params, reference,
                                          comparison.step(one_device, other_batch))
  assert not other['passed']
  assert other['max_abs_params_difference'] > 20 * other['params_tolerance']


def test_the_comparison_measures_the_largest_difference_of_any_leaf():
  before = {'a': np.zeros(3, np.float32), 'b': {'c': np.zeros((2, 2), np.float32)}}
  after = {'a': np.array([0.1, -0.4, 0.], np.float32), 'b': {'c': np.full((2, 2), 0.2, np.float32)}}
  nudge = np.array([[0, 0], [0, -3e-4]], np.float32)
  moved = {'a': after['a'], 'b': {'c': after['b']['c'] + nudge}}
  result = accelerator_check.compare_steps(before, (after, 2.0), (moved, 2.001), rtol=1e-3)
  assert result['largest_parameter_update'] == pytest.approx(0.4)
  assert result['max_abs_params_difference'] == pytest.approx(3e-4, rel=1e-3)
  assert result['params_tolerance'] == pytest.approx(4e-4)
  assert result['abs_loss_difference'] == pytest.approx(1e-3, rel=1e-3)
  assert result['loss_tolerance'] == pytest.approx(2e-3)
  assert result['passed']
  assert not accelerator_check.compare_steps(before, (after, 2.0), (moved, 2.01))['passed']


def test_the_summary_has_one_row_per_benchmark_entry_with_its_speed(quick_check):
  workdir, report, lines = quick_check
  markdown = (workdir / 'accelerator_check.md').read_text()
  assert '\n'.join(lines).count(markdown.strip()) == 1  # printed as written
  rows = _benchmark_rows(markdown)
  assert len(rows) == 4
  entries = set()
  for device, command, dtype, batch, compile_s, images_per_s, peak in rows:
    assert device == '4 × cpu'
    config = command.split('--config=')[1].split()[0]
    entries.add((config, dtype))
    assert ('--config.half_precision=True' in command) == (dtype == 'bfloat16')
    assert batch == ('32' if 'att3' in config else '8')
    assert float(compile_s) > 0 and float(images_per_s) > 0
    assert 'GiB (host peak RSS)' in peak
  assert entries == EXPECTED_ENTRIES
  saved = json.loads((workdir / 'accelerator_check.json').read_text())
  assert saved == json.loads(json.dumps(report))
  assert saved['finished'] and saved['quick']
  assert [row['images_per_s'] for row in saved['benchmarks']] == [float(row[5]) for row in rows]
  for row in saved['benchmarks']:
    assert 'error' not in row and row['compilations_of_train_step'] == 1
  # The peaks are the process's maxima: an entry whose peak did not rise is marked as a bound.
  peaks = [row['peak_memory_gib'] for row in saved['benchmarks']]
  assert peaks == sorted(peaks)
  for previous, row in zip(peaks, saved['benchmarks'][1:]):
    assert row['peak_memory_is_upper_bound'] == (row['peak_memory_gib'] <= previous)
  assert '| 4 × cpu | one train step, 4 devices vs 1 |' in markdown
  assert 'pass: max \\|Δ params\\|' in markdown


def test_each_part_is_announced_with_its_progress_and_the_environment_is_reported(quick_check):
  _, report, lines = quick_check
  progress = [line for line in lines if line.startswith('[part ')]
  assert [line.split(',')[0] for line in progress] == [f'[part {i}/7' for i in range(1, 8)]
  assert all(' elapsed, about ' in line and ' to go] ' in line for line in progress)
  environment = report['environment']
  assert environment['jax'] == jax.__version__ and environment['backend'] == 'cpu'
  assert environment['local_device_count'] == 4 and environment['process_count'] == 1
  assert '  device memory: not reported by this backend' in lines


def test_the_quickstart_trains_to_the_end_in_the_workdir(quick_check):
  workdir, report, _ = quick_check
  row = report['quickstart']
  assert 'error' not in row
  assert 0 <= row['test_accuracy'] <= 1 and row['wall_s'] > 0
  assert (workdir / 'quickstart' / 'checkpoints' / '2').is_dir()  # 16 images, batch 8, 1 epoch
  assert row['command'].startswith('python main.py --config=configs/quickstart.py --workdir=')


def test_missing_quickstart_data_is_one_line_in_its_row(tmp_path, monkeypatch):
  def missing(config, workdir, mesh=None):
    raise DataError('fashion_mnist is not prepared in /nowhere.\nSecond line of detail.')

  monkeypatch.setattr(train, 'train_and_evaluate', missing)
  row = accelerator_check.run_quickstart(accelerator_check.make_plan(False).quickstart,
                                         tmp_path / 'quickstart')
  assert row['error'] == ('data not available, skipped: DataError: fashion_mnist is not '
                          'prepared in /nowhere.')
  assert accelerator_check.quickstart_result(row) == row['error']


def test_a_failing_benchmark_entry_is_reported_in_its_row():
  entry = accelerator_check.Entry('cifar100_att3', {'model.width': 1 / 16, 'batch_size': 6})
  row = accelerator_check.run_benchmark(entry, num_steps=1, previous_peak_gib=None)
  assert row['error'].startswith('ConfigError: config.batch_size=6 is not divisible by the 4 '
                                 'devices')
  assert '\n' not in row['error'] and 'images_per_s' not in row
  markdown = accelerator_check.summary_markdown(
      {'quick': True, 'started': 'now', 'benchmarks': [row]})
  (cells,) = _benchmark_rows(markdown)
  assert cells[4].startswith('failed: ConfigError: config.batch_size=6')


def test_one_device_skips_the_step_check_and_says_why(monkeypatch):
  monkeypatch.setattr(jax, 'local_devices', lambda: jax.devices()[:1])
  row = accelerator_check.run_step_check(accelerator_check.make_plan(True).step_check)
  assert row == {'config': 'configs/cifar100_att3.py', 'num_devices': 1,
                 'overrides': accelerator_check.make_plan(True).step_check.overrides,
                 'skipped': 'needs at least 2 devices; this machine has 1'}
  assert accelerator_check.step_check_result(row) == (
      'skipped: needs at least 2 devices; this machine has 1')


def test_the_full_check_runs_the_paper_batches_and_plans_under_ten_minutes():
  full, quick = accelerator_check.make_plan(False), accelerator_check.make_plan(True)
  configs = [entry.config() for entry in full.benchmarks]
  assert [(entry.path, entry.dtype, config.batch_size, config.data.image_size)
          for entry, config in zip(full.benchmarks, configs)] == [
              ('configs/cifar100_att3.py', 'bfloat16', 128, None),
              ('configs/cifar100_att3.py', 'float32', 128, None),
              ('configs/imagenet_resnet.py', 'bfloat16', 256, None),
              ('configs/imagenet_resnet.py', 'float32', 256, None)]
  assert configs[0].model.width == 1 and configs[2].model.depth == 18
  assert full.num_steps == 20 and quick.num_steps == 1
  assert full.quickstart.overrides == {} and full.quickstart.config().data.name == 'fashion_mnist'
  assert full.step_check.config().batch_size == 128
  planned = (full.environment_planned_s + sum(entry.planned_s for entry in full.benchmarks)
             + full.quickstart.planned_s + full.step_check.planned_s)
  assert planned <= 600
  # --quick shrinks the same configs: the same files and dtypes in the same order.
  assert ([(entry.path, entry.dtype) for entry in quick.benchmarks]
          == [(entry.path, entry.dtype) for entry in full.benchmarks])


def test_quick_compiles_fast_on_a_cpu_only_and_keeps_the_users_flags():
  fast = ' '.join(accelerator_check.QUICK_CPU_XLA_FLAGS)
  assert accelerator_check.quick_xla_flags('', True, '0.10.2') == fast
  assert accelerator_check.quick_xla_flags('--a=1', True, '0.10.2') == f'--a=1 {fast}'
  mine = '--xla_backend_optimization_level=2'
  assert accelerator_check.quick_xla_flags(mine, True, '0.10.2') == (
      f'{mine} --xla_llvm_disable_expensive_passes=true --xla_cpu_use_fusion_emitters=false')
  # With a GPU or TPU plugin, or a jaxlib the flags were not tested with: unchanged.
  assert accelerator_check.quick_xla_flags('--a=1', False, '0.10.2') == '--a=1'
  assert accelerator_check.quick_xla_flags('--a=1', True, '0.11.0') == '--a=1'


def _run_command(*args):
  return subprocess.run([sys.executable, '-m', 'lpta.accelerator_check', *args], cwd=REPO_ROOT,
                        capture_output=True, text=True, timeout=120)


def test_help_exits_zero_and_errors_are_one_line(tmp_path):
  result = _run_command('--help')
  assert result.returncode == 0
  assert result.stdout.startswith('usage: python -m lpta.accelerator_check')
  assert '--quick' in result.stdout and '--workdir' in result.stdout

  result = _run_command('--steps=3')
  assert result.returncode != 0
  assert result.stderr.strip().splitlines() == [
      'error: unrecognized arguments: --steps=3 (see --help)']

  blocker = tmp_path / 'a_file'
  blocker.write_text('')
  result = _run_command('--quick', f'--workdir={blocker / "check"}')
  assert result.returncode == 1
  (line,) = result.stderr.strip().splitlines()
  assert line == (f'error: cannot write to --workdir={blocker / "check"} (Not a directory); '
                  'choose a folder you can write to.')
