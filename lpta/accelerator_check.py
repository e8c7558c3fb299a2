"""One command that checks lpta on a GPU or TPU and writes what a performance page needs.

  python -m lpta.accelerator_check [--workdir=runs/accelerator_check] [--quick]

Four parts, in about 8 minutes on one GPU (at most 10), each with a progress line and an ETA:
  1. the versions of JAX, jaxlib and Flax, the backend, the devices and their memory;
  2. the training speed (lpta.benchmark: compile time, images/s, peak memory) of
     configs/cifar100_att3.py (batch 128) and configs/imagenet_resnet.py (ResNet-18, batch 256),
     each in bfloat16 and float32; an entry that fails (out of memory, ...) says so in its row;
  3. the quickstart (configs/quickstart.py) trained end to end: wall time, final test accuracy;
  4. one train step on all local devices against the same step on one device (needs two).
Then a markdown summary, printed and written with the raw results to
<workdir>/accelerator_check.md and <workdir>/accelerator_check.json (rewritten after each part,
so an interrupted check keeps what it measured). <workdir>/quickstart is replaced at each run.

--quick runs the same code on toy configs (the VGG-att3 at 1/16 width on batches of 32,
ResNet-18 on 16² crops in batches of 8, the quickstart on 24 synthetic images, 1 timed step),
compiled on a CPU without XLA's costly optimisations as the tests are: under a minute on a CPU,
and its speeds are not the CPU's best. tests/test_accelerator_check.py runs it on 4 CPU devices.

Peak memory is what lpta.benchmark reports: the device allocator's peak (GPU, TPU) or the
process's peak resident set (CPU), both maxima over the whole process. The entries run from the
smallest expected footprint to the largest, so each peak is its own; where a peak did not rise
above the entry before's, the entry's own is at most that, shown as "≤".
"""

import argparse
import pathlib
import sys

DEFAULT_WORKDIR = 'runs/accelerator_check'


class _Parser(argparse.ArgumentParser):

  def error(self, message):
    sys.exit(f'error: {message} (see --help)')


def parse_args(argv):
  parser = _Parser(
      prog='python -m lpta.accelerator_check',
      description='Versions and devices, the training speed of the paper networks in float32 and '
                  'bfloat16, the quickstart trained end to end and a multi-device step check, '
                  'summarised in <workdir>/accelerator_check.{md,json}. About 8 minutes on one '
                  'GPU.')
  parser.add_argument('--workdir', default=DEFAULT_WORKDIR,
                      help=f'where the reports and the quickstart run go; <workdir>/quickstart '
                           f'is replaced (default: {DEFAULT_WORKDIR})')
  parser.add_argument('--quick', action='store_true',
                      help='the same parts on toy configs: under a minute on a CPU')
  return parser.parse_args(argv)


def prepare_workdir(workdir) -> pathlib.Path:
  """The workdir, created; OSError if it cannot be written to."""
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  probe = workdir / '.accelerator_check.probe'
  probe.write_text('')
  probe.unlink()
  return workdir


def checked_args(argv) -> argparse.Namespace:
  """The command's arguments, with the workdir created; a one-line exit on a usage error or a
  workdir that cannot be written to."""
  args = parse_args(argv)
  try:
    args.workdir = prepare_workdir(args.workdir)
  except OSError as error:
    sys.exit(f'error: cannot write to --workdir={args.workdir} ({error.strerror or error}); '
             'choose a folder you can write to.')
  return args


if __name__ == '__main__':
  checked_args(sys.argv[1:])  # usage and workdir errors answer before JAX is imported
  from lpta import allocator  # pylint: disable=g-import-not-at-top
  allocator.restart_with_tcmalloc()  # as lpta.benchmark does, so that the speeds are main.py's

import copy  # pylint: disable=g-import-not-at-top,wrong-import-position
import dataclasses
import datetime
import gc
import importlib
import json
import os
import platform
import shlex
import shutil
import time
from typing import Any, Callable

from absl import flags as absl_flags
from absl import logging
import flax
import jax
import jaxlib
import numpy as np

from lpta import benchmark
from lpta import command_line
from lpta import data
from lpta import families
from lpta import sharding
from lpta import train
from lpta import xla_cpu
from lpta.errors import DataError

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
REPORT_NAME = 'accelerator_check'

# The multi-device check passes when both largest differences are within RTOL of their scale:
# the largest change the one-device step made to any parameter, and the loss. Reordered float32
# sums differ by about sqrt(N)·eps relative (a random walk of rounding errors; eps = 1.2e-7):
# 4e-5 for the largest reduction of the paper's network, BatchNorm's mean over 128 · 32 · 32
# positions (and the all-reduce of per-device partial sums). About 16 such normalised layers,
# forward then backward, add up to 16 · 4e-5 ≈ 7e-4 at worst, so RTOL = 1e-3 does not fail a
# correct step; measured, 4 CPU devices against 1 differ by ~5e-6 of the update (--quick). A
# wrong step (statistics per device, a batch split or paired wrongly, gradients not summed over
# devices) moves it by the order of the step itself (another batch, --quick: 1.9 × the largest
# update, 1,900 times the tolerance). On a GPU or TPU the step runs at full float32 matmul
# precision (jax.default_matmul_precision('highest')): TF32 (GPUs' default, 10-bit mantissa)
# with other convolution algorithms at another per-device batch would differ by more than
# reordering.
# Near-degenerate BatchNorm statistics amplify rounding (8 images of a 4-channel network with
# dropout: ~2e-3), so the check runs on the paper's network at batch 128 (--quick: 32 images).
RTOL = 1e-3


@dataclasses.dataclass(frozen=True)
class Entry:
  """One config to run: a config file of configs/ and the overrides applied to it."""
  config_file: str  # e.g. 'cifar100_att3'
  overrides: dict[str, Any]
  planned_s: float = 0.  # expected seconds (for the ETA)

  def config(self):
    config = importlib.import_module(f'configs.{self.config_file}').get_config()
    config.update_from_flattened_dict(self.overrides)
    return config

  def flags(self) -> list[str]:
    def text(value):
      return str(tuple(value)) if isinstance(value, (tuple, list)) else str(value)
    return [shlex.quote(f'--config.{name}={text(value)}') for name, value in self.overrides.items()]

  @property
  def path(self) -> str:
    return f'configs/{self.config_file}.py'

  @property
  def dtype(self) -> str:
    return 'bfloat16' if self.overrides.get('half_precision') else 'float32'


@dataclasses.dataclass(frozen=True)
class Plan:
  """What one check runs; --quick changes only the configs and the step count."""
  quick: bool
  benchmarks: list[Entry]
  num_steps: int
  quickstart: Entry
  step_check: Entry
  environment_planned_s: float


# --quick: the same networks on small inputs and batches, narrow where they have a width. The
# VGG-att3 takes 32 images, not 8: on 8 images of its 4-channel version with dropout, BatchNorm's
# statistics are near-degenerate and amplify float32 rounding in the step check to ~2e-3 of the
# update, against ~5e-6 on 32 (and on the paper's network at 128).
_QUICK_ATT3 = {'model.width': 1 / 16, 'batch_size': 32}
_QUICK_RESNET = {'data.image_size': 16, 'batch_size': 8}
_QUICK_QUICKSTART = {
    'data.name': 'synthetic', 'data.synthetic_image_shape': (16, 16, 1),
    'data.synthetic_num_classes': 10, 'data.synthetic_num_train': 24,
    'data.synthetic_num_test': 8, 'data.validation_split': 8, 'batch_size': 8,
    'eval_batch_size': 8, 'num_epochs': 1, 'num_attention_images': 0}


def make_plan(quick: bool) -> Plan:
  """The entries in full (one GPU: about 8 minutes planned) or quick mode. Planned seconds:
  on one GPU, and for --quick on 2 CPU cores; they only feed the ETA."""
  att3, resnet = (_QUICK_ATT3, _QUICK_RESNET) if quick else ({}, {})
  att3_s, resnet_s = (5, 10) if quick else (60, 90)
  # From the smallest device footprint to the largest (see the module docstring on peaks).
  benchmarks = [Entry('cifar100_att3', {**att3, 'half_precision': True}, att3_s),
                Entry('cifar100_att3', {**att3, 'half_precision': False}, att3_s),
                Entry('imagenet_resnet', {**resnet, 'half_precision': True}, resnet_s),
                Entry('imagenet_resnet', {**resnet, 'half_precision': False}, resnet_s)]
  return Plan(quick=quick, benchmarks=benchmarks, num_steps=1 if quick else 20,
              quickstart=Entry('quickstart', _QUICK_QUICKSTART if quick else {},
                               8 if quick else 150),
              step_check=Entry('cifar100_att3', {**att3, 'half_precision': False},
                               8 if quick else 60),
              environment_planned_s=1 if quick else 5)


def one_line(error: BaseException) -> str:
  text = (str(error).strip().splitlines() or [''])[0]
  line = f'{type(error).__name__}: {text}' if text else type(error).__name__
  return line if len(line) <= 300 else line[:297] + '...'


def _gib(num_bytes) -> float:
  return round(num_bytes / 2**30, 2)


# Part 1: the machine.


def environment() -> dict:
  devices = jax.devices()
  memory = []
  for device in jax.local_devices():
    stats = device.memory_stats() or {}
    memory.append({'device': str(device), 'bytes_limit_gib': _gib(stats['bytes_limit'])
                                          if 'bytes_limit' in stats else None,
                   'bytes_in_use_gib': _gib(stats['bytes_in_use'])
                                       if 'bytes_in_use' in stats else None})
  return {'python': platform.python_version(), 'jax': jax.__version__,
          'jaxlib': jaxlib.__version__, 'flax': flax.__version__,
          'backend': jax.default_backend(), 'device_kind': devices[0].device_kind,
          'device_count': len(devices), 'local_device_count': jax.local_device_count(),
          'process_count': jax.process_count(), 'device_memory': memory,
          'device': f'{len(devices)} × {devices[0].device_kind}'}


def environment_lines(env: dict) -> list[str]:
  lines = [f'jax {env["jax"]}, jaxlib {env["jaxlib"]}, flax {env["flax"]}, '
           f'Python {env["python"]}',
           f'backend {env["backend"]}: {env["device"]} ({env["local_device_count"]} local, '
           f'{env["process_count"]} process{"es" if env["process_count"] > 1 else ""})']
  reported = [m for m in env['device_memory'] if m['bytes_limit_gib'] is not None]
  if not reported:
    lines.append('device memory: not reported by this backend')
  for memory in reported:
    lines.append(f'{memory["device"]}: {memory["bytes_limit_gib"]} GiB usable, '
                 f'{memory["bytes_in_use_gib"]} GiB in use')
  return lines


# Part 2: training speed.


def benchmark_command(entry: Entry, num_steps: int) -> str:
  return ' '.join(['python -m lpta.benchmark', f'--config={entry.path}', f'--steps={num_steps}',
                   *entry.flags()])


def run_benchmark(entry: Entry, num_steps: int, previous_peak_gib: float | None) -> dict:
  """lpta.benchmark's result for `entry`, or its failure in one line; never raises."""
  row = {'config': entry.path, 'overrides': entry.overrides, 'dtype': entry.dtype,
         'command': benchmark_command(entry, num_steps)}
  try:
    config = entry.config()
    row['batch_size'] = config.batch_size
    row.update(benchmark.benchmark(config, num_steps))
  except Exception as error:  # pylint: disable=broad-except  (reported in the row)
    row['error'] = one_line(error)
  finally:
    gc.collect()  # the entry's arrays leave the device before the next entry
  if 'peak_memory_gib' in row:
    row['peak_memory_is_upper_bound'] = (previous_peak_gib is not None
                                         and row['peak_memory_gib'] <= previous_peak_gib)
  return row


# Part 3: the quickstart, trained end to end.


def run_quickstart(entry: Entry, workdir: pathlib.Path) -> dict:
  """Trains `entry` in `workdir` (replaced) with lpta.train; its failure in one line."""
  row = {'config': entry.path, 'overrides': entry.overrides, 'workdir': str(workdir),
         'command': ' '.join(['python main.py', f'--config={entry.path}',
                              f'--workdir={shlex.quote(str(workdir))}', *entry.flags()])}
  start = time.perf_counter()
  try:
    if workdir.exists():
      shutil.rmtree(workdir)
    _, metrics = train.train_and_evaluate(entry.config(), workdir)
  except DataError as error:
    row['error'] = f'data not available, skipped: {one_line(error)}'
    return row
  except Exception as error:  # pylint: disable=broad-except
    row['error'] = one_line(error)
    return row
  finally:
    gc.collect()
  row['wall_s'] = round(time.perf_counter() - start, 1)
  row.update({name: round(float(value), 4) for name, value in metrics.items()})
  return row


# Part 4: one step on every local device against one device.


def max_abs_difference(first, second) -> float:
  """The largest |a − b| over two pytrees of arrays of the same structure."""
  differences = jax.tree.map(
      lambda a, b: float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)),
                                initial=0.)), first, second)
  return max(jax.tree.leaves(differences), default=0.)


def compare_steps(params_before, reference: tuple[Any, float], other: tuple[Any, float],
                  rtol: float = RTOL) -> dict:
  """Whether two steps from `params_before` agree: (params after, loss) of each. The tolerances
  are `rtol` times the reference step's largest parameter change and its loss (see RTOL)."""
  (reference_params, reference_loss), (other_params, other_loss) = reference, other
  update = max_abs_difference(reference_params, params_before)
  params_difference = max_abs_difference(reference_params, other_params)
  loss_difference = abs(float(reference_loss) - float(other_loss))
  params_tolerance, loss_tolerance = rtol * update, rtol * abs(float(reference_loss))
  return {'max_abs_params_difference': params_difference, 'params_tolerance': params_tolerance,
          'largest_parameter_update': update, 'loss': float(reference_loss),
          'abs_loss_difference': loss_difference, 'loss_tolerance': loss_tolerance, 'rtol': rtol,
          'passed': params_difference <= params_tolerance and loss_difference <= loss_tolerance}


class StepComparison:
  """One train step of `config` (in float32) from the same state and global batch, on any set
  of local devices; lpta.benchmark.LptaStep supplies the initial state and synthetic batch."""

  def __init__(self, config):
    config = copy.deepcopy(config)
    config.half_precision = False
    initial = benchmark.LptaStep(config)
    # Host copies: each step gets its own device arrays (the train step donates the state).
    self.state = jax.device_get(initial.state)
    self.metrics = jax.device_get(initial.metrics)
    self.batch = jax.device_get(initial.batch)
    self.normalisation = jax.device_get(initial.normalisation)
    self.rng = initial.rng
    self.batch_size = config.batch_size
    self.family = families.get(config.model)
    self.source = data.get(config.data)
    model = self.family.build(self.source.num_classes, families.compute_dtype(False))
    self.objective = self.family.objective(config, model, self.source.image_shape)
    self._trainers = {}

  def trainer(self, devices) -> train.Trainer:
    key = tuple(device.id for device in devices)
    if key not in self._trainers:
      self._trainers[key] = train.Trainer(self.family, self.source, self.objective,
                                          num_train_steps=1, mesh=sharding.make_mesh(devices))
    return self._trainers[key]

  def step(self, devices, batch=None) -> tuple[Any, float]:
    """(parameters after the step, on the host; the step's loss) on a mesh of `devices`."""
    trainer = self.trainer(devices)
    mesh = trainer.mesh
    # Full float32 on a GPU or TPU (see RTOL). XLA:CPU computes float32 in float32 at every
    # precision, and there the step compiles to lpta.benchmark's program (which --quick has
    # just compiled, with the same batch: a persistent compilation cache, as in the tests,
    # compiles it once).
    precision = 'highest' if jax.default_backend() != 'cpu' else None
    with jax.default_matmul_precision(precision):
      state, metrics = trainer.train_step(
          sharding.replicate(self.state, mesh), sharding.replicate(self.metrics, mesh),
          trainer.to_global(self.batch if batch is None else batch),
          sharding.replicate(self.normalisation, mesh), sharding.replicate(self.rng, mesh), None)
    return jax.device_get(state.params), float(metrics.compute()['loss'])


def run_step_check(entry: Entry) -> dict:
  """All local devices against one; skipped, with the reason, where that cannot be run."""
  devices = jax.local_devices()
  row = {'config': entry.path, 'overrides': entry.overrides, 'num_devices': len(devices)}
  if len(devices) < 2:
    row['skipped'] = f'needs at least 2 devices; this machine has {len(devices)}'
    return row
  if jax.process_count() > 1:
    row['skipped'] = f'compares the devices of one process; this run has {jax.process_count()}'
    return row
  try:
    config = entry.config()
    if config.batch_size % len(devices):
      row['skipped'] = (f'the batch of {config.batch_size} does not divide over '
                        f'{len(devices)} devices')
      return row
    row['batch_size'] = config.batch_size
    comparison = StepComparison(config)
    one = comparison.step(devices[:1])
    every = comparison.step(devices)
    row.update(compare_steps(comparison.state.params, one, every))
  except Exception as error:  # pylint: disable=broad-except
    row['error'] = one_line(error)
  finally:
    gc.collect()
  return row


# The summary.


def _peak(row: dict) -> str:
  if 'peak_memory_gib' not in row:
    return ''
  bound = '≤ ' if row.get('peak_memory_is_upper_bound') else ''
  return f'{bound}{row["peak_memory_gib"]} GiB ({row["peak_memory_kind"]})'


def _percent(value) -> str:
  return f'{100 * value:.2f}%'


def quickstart_result(row: dict) -> str:
  if 'error' in row:
    return row['error']
  parts = [f'test accuracy {_percent(row["test_accuracy"])}' if 'test_accuracy' in row
           else 'no test accuracy']
  if 'validation_accuracy' in row:
    parts.append(f'validation accuracy {_percent(row["validation_accuracy"])}')
  return ', '.join(parts) + f' in {row["wall_s"]} s'


def step_check_result(row: dict) -> str:
  if 'skipped' in row:
    return f'skipped: {row["skipped"]}'
  if 'error' in row:
    return f'failed to run: {row["error"]}'
  verdict = 'pass' if row['passed'] else 'FAIL'
  return (f'{verdict}: max |Δ params| {row["max_abs_params_difference"]:.2e} (tolerance '
          f'{row["params_tolerance"]:.2e}), |Δ loss| {row["abs_loss_difference"]:.2e} (tolerance '
          f'{row["loss_tolerance"]:.2e}); tolerance = {row["rtol"]:g} × the largest parameter '
          'update and × the loss')


def _cell(text) -> str:
  return str(text).replace('|', '\\|').replace('\n', ' ')


def summary_markdown(report: dict) -> str:
  env = report.get('environment', {})
  device = env.get('device', '?')
  lines = [f'## lpta accelerator check ({"--quick" if report["quick"] else "full"})', '']
  if env:
    lines += [f'- {line}' for line in environment_lines(env)]
  lines += [f'- started {report["started"]}, {report.get("elapsed_s", 0):.0f} s so far'
            if not report.get('finished') else
            f'- started {report["started"]}, took {report["elapsed_s"]:.0f} s', '',
            '| device | command | dtype | batch | compile s | images/s | peak memory |',
            '|---|---|---|---|---|---|---|']
  for row in report.get('benchmarks', []):
    if 'error' in row:
      cells = [device, f'`{row["command"]}`', row['dtype'], row.get('batch_size', ''),
               f'failed: {row["error"]}', '', '']
    else:
      cells = [row['device'], f'`{row["command"]}`', row['dtype'], row['batch_size'],
               row['compile_and_first_step_s'], row['images_per_s'], _peak(row)]
    lines.append('| ' + ' | '.join(_cell(cell) for cell in cells) + ' |')
  lines += ['', 'compile s: the first train step, compilation included; images/s: the global batch '
            '÷ the median step; peak memory: the process\'s peak so far (≤: not above the entry '
            'before\'s, so at most that). Synthetic data, lpta.benchmark.',
            '', '| device | check | command | result |', '|---|---|---|---|']
  if 'quickstart' in report:
    row = report['quickstart']
    lines.append(f'| {_cell(device)} | quickstart, end to end | `{_cell(row["command"])}` | '
                 f'{_cell(quickstart_result(row))} |')
  if 'step_check' in report:
    row = report['step_check']
    lines.append(f'| {_cell(device)} | one train step, {row["num_devices"]} devices vs 1 | '
                 f'`python -m lpta.accelerator_check{" --quick" if report["quick"] else ""}` | '
                 f'{_cell(step_check_result(row))} |')
  return '\n'.join(lines) + '\n'


def write_report(report: dict, workdir: pathlib.Path) -> None:
  (workdir / f'{REPORT_NAME}.json').write_text(json.dumps(report, indent=1) + '\n')
  (workdir / f'{REPORT_NAME}.md').write_text(summary_markdown(report))


class Progress:
  """Prints '[part i/n, m:ss elapsed, about m:ss to go] what' before each part. The ETA is the
  planned seconds of the parts left, scaled by how long the parts done took against their plan."""

  def __init__(self, planned: list[float], out: Callable[[str], None]):
    self.planned, self.out, self.done = planned, out, 0
    self.start = time.perf_counter()

  def elapsed(self) -> float:
    return time.perf_counter() - self.start

  def __call__(self, what: str) -> None:
    elapsed = self.elapsed()
    planned_done = sum(self.planned[:self.done])
    # Until a tenth of the plan has run, the plan itself; then its pace so far.
    scale = elapsed / planned_done if planned_done >= sum(self.planned) / 10 else 1.
    to_go = sum(self.planned[self.done:]) * scale
    self.out(f'[part {self.done + 1}/{len(self.planned)}, {_clock(elapsed)} elapsed, about '
             f'{_clock(to_go)} to go] {what}')
    self.done += 1


def _clock(seconds: float) -> str:
  minutes, seconds = divmod(int(round(seconds)), 60)
  return f'{minutes}:{seconds:02d}'


def run_check(workdir, quick: bool = False, out: Callable[[str], None] = print) -> dict:
  """Runs every part into `workdir` (created); returns the report written there. Raises OSError
  if the workdir cannot be written to; a failing part is reported, not raised."""
  workdir = prepare_workdir(workdir)
  plan = make_plan(quick)
  single_device = len(jax.local_devices()) < 2
  planned = ([plan.environment_planned_s] + [entry.planned_s for entry in plan.benchmarks] +
             [plan.quickstart.planned_s, 1 if single_device else plan.step_check.planned_s])
  progress = Progress(planned, out)
  report = {'quick': quick, 'started': datetime.datetime.now().isoformat(timespec='seconds'),
            'finished': False, 'rtol': RTOL}

  def save():
    report['elapsed_s'] = round(progress.elapsed(), 1)
    write_report(report, workdir)

  progress('environment: versions, backend, devices')
  report['environment'] = environment()
  for line in environment_lines(report['environment']):
    out(f'  {line}')
  save()
  # The process's peak before the first entry (imports, JAX): an entry that stays below it
  # reports it, as an upper bound of its own.
  report['benchmarks'], peak = [], benchmark.memory()['peak_memory_gib']
  for index, entry in enumerate(plan.benchmarks):
    progress(f'benchmark {index + 1} of {len(plan.benchmarks)}: {entry.path} {entry.dtype} '
             f'({plan.num_steps} timed step{"s" if plan.num_steps > 1 else ""})')
    row = run_benchmark(entry, plan.num_steps, peak)
    # Also after a failure: what a failed entry allocated counts in the peaks after it.
    peak = benchmark.memory()['peak_memory_gib']
    report['benchmarks'].append(row)
    out(f'  {row["error"]}' if 'error' in row else
        f'  compile {row["compile_and_first_step_s"]} s, {row["images_per_s"]} images/s, '
        f'peak memory {_peak(row)}')
    save()
  progress(f'quickstart: {plan.quickstart.path} trained end to end')
  report['quickstart'] = run_quickstart(plan.quickstart, workdir / 'quickstart')
  out(f'  {quickstart_result(report["quickstart"])}')
  save()
  count = len(jax.local_devices())
  progress(f'multi-device check: one train step on the {count} local devices against 1'
           if count > 1 else 'multi-device check: needs 2 or more devices, this machine has 1')
  report['step_check'] = run_step_check(plan.step_check)
  out(f'  {step_check_result(report["step_check"])}')
  report['finished'] = True
  save()
  out('')
  out(summary_markdown(report))
  out(f'Written: {workdir / (REPORT_NAME + ".md")} and {workdir / (REPORT_NAME + ".json")}')
  return report


# --quick on a CPU compiles as the tests do (tests/conftest.py): XLA's costly CPU optimisations
# off, which takes the quick check from minutes of compiling to well under one. The programs
# compute the same functions, more slowly; --quick checks that everything runs, not speed.
QUICK_CPU_XLA_FLAGS = ('--xla_backend_optimization_level=0',
                       '--xla_llvm_disable_expensive_passes=true',
                       '--xla_cpu_use_fusion_emitters=false')


def quick_xla_flags(xla_flags: str, cpu_only: bool, jaxlib_version: str) -> str:
  """XLA_FLAGS for --quick: with QUICK_CPU_XLA_FLAGS where JAX has no GPU or TPU plugin and the
  jaxlib is one they were tested with (XLA aborts on a flag it does not know); a flag the user
  set is kept."""
  if not cpu_only or not jaxlib_version.startswith(xla_cpu.TESTED_JAXLIB_VERSIONS):
    return xla_flags
  added = [flag for flag in QUICK_CPU_XLA_FLAGS if flag.split('=')[0] not in xla_flags]
  return ' '.join([xla_flags, *added]).strip()


def main(argv=None) -> None:
  args = checked_args(sys.argv[1:] if argv is None else argv)
  if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # configs/ is imported from the repository root
  # lpta.benchmark defines absl flags that this command does not parse; the logs of absl (lpta's
  # and the libraries') then stay at warnings, without absl's "before flag parsing" notice.
  absl_flags.FLAGS.mark_as_parsed()
  logging.set_verbosity(logging.WARNING)
  command_line.quiet_library_info()
  if args.quick:
    os.environ['XLA_FLAGS'] = quick_xla_flags(os.environ.get('XLA_FLAGS', ''),
                                              xla_cpu.cpu_tuning_applies(), jaxlib.__version__)
  workdir = args.workdir
  try:
    run_check(workdir, quick=args.quick, out=lambda line: print(line, flush=True))
  except OSError as error:
    sys.exit(f'error: cannot write the report to --workdir={args.workdir} '
             f'({error.strerror or error}).')
  except KeyboardInterrupt:
    sys.exit(f'Interrupted; what was measured is in {workdir}/{REPORT_NAME}.md.')


if __name__ == '__main__':
  main()
