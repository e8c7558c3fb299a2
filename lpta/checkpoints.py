"""Orbax checkpoints of a run: everything to resume it and everything to use it elsewhere.

A checkpoint is a step folder under `<workdir>/checkpoints/` (a path or a URL such as gs://...)
with separate items, so a reader restores only what it needs (`lpta.load_run` reads the
network and its input statistics, never the optimiser state):

  params, batch_stats, opt_state   pytrees (Orbax StandardSave); batch_stats only if the model
                                   has any
  normalisation                    {'mean', 'std'[, 'zca_matrix']}: the input statistics
  progress                         JSON {'step': int}
  config                           JSON, the run's resolved config
  dataset                          JSON {'name', 'image_shape', 'class_names'}
  version                          JSON {'lpta': lpta.__version__, 'git_commit': the commit
                                   of the checkout that wrote it, or None}
  metrics                          JSON, the evaluation metrics at that step (Orbax's item)

The `keep_latest` newest checkpoints are kept, and the `keep_best` ones with the highest
validation accuracy; the validation accuracy is written with each checkpoint, so a resumed run
still knows which checkpoints are the best. Checkpoints saved without it (no validation split,
or an interrupted run) are kept only while they are among the newest.

A run that starts again resumes from its latest intact checkpoint (`resume`), once its config
has been checked against the one it was saved with (`refuse_incompatible_resume`).
"""

import functools
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
import traceback
from typing import Any, Mapping

from absl import logging
from etils import epath
import jax
from jax.experimental import multihost_utils
import ml_collections
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

import lpta
from lpta.data import preprocessing
from lpta.errors import CheckpointError, ConfigError

TRAIN_STATE_ITEMS = ('params', 'batch_stats', 'opt_state')
JSON_ITEMS = ('progress', 'config', 'dataset', 'version')
BEST_METRIC = 'validation_accuracy'
# Config fields that may change when a run resumes: how it is logged, evaluated and stored, and
# where its data lives. Any other change (model, data, schedule, seed, ...) is refused.
RESUMABLE_CHANGES = ('eval_batch_size', 'eval_every_epochs', 'log_every_steps',
                     'keep_checkpoints', 'keep_best_checkpoints', 'num_attention_images',
                     'data.data_dir', 'data.manual_dir', 'teacher.workdir')
# The evaluators scheduled during training; where a new run's parameters came from (a resumed
# run restores its own).
RESUMABLE_PREFIXES = ('evals.', 'init_from.')
def check_workdir(workdir: epath.Path) -> None:
  """ConfigError unless a local `workdir` is, or can be made, a writable folder (URLs such as
  gs://... are checked when first written)."""
  if '://' in os.fspath(workdir):
    return
  existing = os.path.abspath(os.fspath(workdir))
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise ConfigError(f'--workdir={workdir} cannot be made: {existing} is a file, not a '
                      'folder; choose another --workdir.')
  if not os.access(existing, os.W_OK | os.X_OK):
    raise ConfigError(f'--workdir={workdir} is not writable ({existing} is read-only for this '
                      'user); choose a folder you can write to.')


def _check_url_support(directory: str) -> None:
  """ConfigError for a gs:// directory where google-cloud-storage, with which Orbax lists the
  checkpoints of a bucket, is not installed."""
  if directory.startswith('gs://') and importlib.util.find_spec('google.cloud.storage') is None:
    raise ConfigError(f'{directory} is in a Google Cloud Storage bucket, which needs the package '
                      'google-cloud-storage: pip install "lpta[gcs]" (setup.sh installs it).')


def _flatten(tree: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      flat.update(_flatten(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = value
  return flat


def describe_config_change(saved_config: Mapping[str, Any], config: ml_collections.ConfigDict,
                           added_values: Mapping[str, Any]) -> str | None:
  """'config.x is A in the checkpoint and B now' for the first field that a resumed run may
  not change (any but RESUMABLE_CHANGES), or None. `added_values` ({'part.field': value},
  lpta.train.added_values()) are the values of fields that configs saved before them lack."""
  added = json.loads(json.dumps(dict(added_values)))  # tuples as the JSON lists they are saved as
  saved = {**added, **_flatten(saved_config)}
  current = {**added, **_flatten(json.loads(config.to_json_best_effort()))}
  for field in sorted(set(saved) | set(current)):
    if (field in RESUMABLE_CHANGES or field.startswith(RESUMABLE_PREFIXES)
        or saved.get(field) == current.get(field)):
      continue
    return (f'config.{field} is {_shown(saved, field)} in the checkpoint and '
            f'{_shown(current, field)} now')
  return None


def _shown(flat_config: Mapping[str, Any], field: str) -> str:
  return repr(flat_config[field]) if field in flat_config else 'absent'


def _first_line(error: Exception) -> str:
  """'<type>: <first line>', without the TensorStore spec that its errors append (thousands of
  characters of JSON)."""
  lines = str(error).strip().splitlines()
  first = lines[0].split(' [tensorstore_spec', 1)[0] if lines else ''
  return f'{type(error).__name__}: {first}'


class Checkpointer:
  """Saves and restores a run's checkpoints under `directory` with an Orbax CheckpointManager.

  Writes are asynchronous; `close()` waits for them. `read_only` never creates or deletes
  anything.
  """

  def __init__(self, directory: epath.PathLike, keep_latest: int = 2, keep_best: int = 1,
               read_only: bool = False):
    self.directory = epath.Path(directory)
    if '://' not in str(directory):  # a local path; URLs are absolute already
      self.directory = self.directory.absolute()
    _check_url_support(str(directory))
    policies = [checkpoint_managers.LatestN(n=keep_latest)]
    if keep_best:
      policies.append(checkpoint_managers.BestN(
          get_metric_fn=lambda metrics: metrics[BEST_METRIC], n=keep_best,
          keep_checkpoints_without_metrics=False))
    # best_fn makes Orbax write the metrics with each checkpoint (and read them back on resume);
    # without it the best checkpoint would be forgotten, then deleted.
    tracks_best = bool(keep_best) or read_only
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            preservation_policy=checkpoint_managers.AnyPreservationPolicy(policies),
            best_fn=(lambda metrics: metrics[BEST_METRIC]) if tracks_best else None,
            best_mode='max', enable_async_checkpointing=True, create=not read_only,
            read_only=read_only, save_interval_steps=0 if read_only else 1))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def best_step(self) -> int | None:
    """The step with the highest validation accuracy, or None if no checkpoint has one."""
    scored = [(self._manager.metrics(step) or {}).get(BEST_METRIC) for step in self.all_steps()]
    candidates = [(score, step) for score, step in zip(scored, self.all_steps())
                  if score is not None]
    return max(candidates)[1] if candidates else None

  def resolve_step(self, step: str | int) -> int:
    """'latest', 'best' or a step number (an int, or a str of digits) -> a step that has a
    checkpoint (CheckpointError if not, or for anything else)."""
    if isinstance(step, str) and step.isascii() and step.isdigit():
      step = int(step)
    is_number = hasattr(type(step), '__index__') and not isinstance(step, (bool, str))
    if not is_number and step not in ('latest', 'best'):
      raise CheckpointError(f"step={step!r} names no checkpoint; use 'latest', 'best' or a step "
                            'number such as 1000.')
    steps = self.all_steps()
    if step == 'latest':
      resolved = self.latest_step()
    elif step == 'best':
      resolved = self.best_step()
      if resolved is None and steps:
        raise CheckpointError(
            f'{self.directory} has no checkpoint ranked by {BEST_METRIC} (the run had no '
            'validation split); use step=latest or a step number.')
    else:
      resolved = int(step) if int(step) in steps else None
    if resolved is None:
      available = ', '.join(map(str, steps)) or 'none'
      raise CheckpointError(f'{self.directory} holds no checkpoint for step={step!r} (steps: '
                            f'{available}); train the run first or pick another step.')
    return resolved

  def save(self, step: int, state, config: ml_collections.ConfigDict, dataset: dict[str, Any],
           normalisation, metrics: dict[str, float] | None = None) -> None:
    """Starts an asynchronous save of `state` (a TrainState) at `step`.

    dataset: JSON-able {'name', 'image_shape', 'class_names'}; normalisation: the input
    statistics (lpta.data.preprocessing.Normalisation); metrics: the evaluation metrics, which
    rank the checkpoint among the best when they hold BEST_METRIC.
    """
    items = {name: ocp.args.StandardSave(getattr(state, name)) for name in TRAIN_STATE_ITEMS
             if jax.tree.leaves(getattr(state, name))}
    items['normalisation'] = ocp.args.StandardSave(_normalisation_tree(normalisation))
    items['progress'] = ocp.args.JsonSave({'step': step})
    items['config'] = ocp.args.JsonSave(json.loads(config.to_json_best_effort()))
    items['dataset'] = ocp.args.JsonSave(dataset)
    items['version'] = ocp.args.JsonSave(lpta_version())
    if metrics is not None and BEST_METRIC not in metrics:
      metrics = None  # Orbax ranks every checkpoint with metrics; these cannot be ranked.
    self._manager.save(step, args=ocp.args.Composite(**items), metrics=metrics, force=True)

  def read_json(self, step: int, name: str) -> dict[str, Any]:
    """The JSON item `name` (one of JSON_ITEMS) at `step`."""
    try:
      return self._manager.restore(
          step, args=ocp.args.Composite(**{name: ocp.args.JsonRestore()}))[name]
    except Exception as error:  # pylint: disable=broad-except
      raise CheckpointError(f'cannot read {name} of step {step} in {self.directory} '
                            f'({_first_line(error)}).') from error

  def has_item(self, step: int, name: str) -> bool:
    return (self.directory / str(step) / name).exists()

  def restore_items(self, step: int, targets: Mapping[str, Any]) -> dict[str, Any]:
    """Reads the array items named in `targets` at `step`.

    Each target is a pytree of arrays or jax.ShapeDtypeStruct giving the structure, shapes and
    shardings to restore into. Raises CheckpointError (the cause chained) if one cannot be read.
    """
    args = {name: ocp.args.StandardRestore(jax.tree.map(ocp.utils.to_shape_dtype_struct, target))
            for name, target in targets.items()}
    _ignore_reads_finishing_after_a_failed_restore()
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(**args))
    except Exception as error:  # pylint: disable=broad-except
      raise CheckpointError(
          f'cannot restore step {step} from {self.directory} ({_first_line(error)}); the '
          'checkpoint may be damaged or from another version of the model.') from error
    logging.info('Restored %s from %s at step %d.', ', '.join(targets), self.directory, step)
    return {name: restored[name] for name in targets}

  def restore_state(self, step: int, state):
    """`state` (a TrainState giving structure, shapes and shardings) restored from `step`."""
    targets = {name: getattr(state, name) for name in TRAIN_STATE_ITEMS
               if jax.tree.leaves(getattr(state, name))}
    restored = self.restore_items(step, targets)
    return state.replace(step=self.read_json(step, 'progress')['step'], **restored)

  def reload(self) -> None:
    """Re-reads the step folders after they changed on disk."""
    self._manager.reload()

  def close(self) -> None:
    """Waits for pending writes and releases the manager."""
    self._manager.wait_until_finished()
    self._manager.close()


def _is_late_read_callback(unraisable) -> bool:
  """Whether an unraisable exception is a TensorStore read that finished after the event loop
  of its failed Orbax restore was closed: RuntimeError('Event loop is closed'), raised by
  asyncio's loop.call_soon_threadsafe."""
  frames = traceback.extract_tb(unraisable.exc_traceback) if unraisable.exc_traceback else []
  return (isinstance(unraisable.exc_value, RuntimeError)
          and str(unraisable.exc_value) == 'Event loop is closed'
          and any(frame.name == 'call_soon_threadsafe' for frame in frames))


@functools.cache
def _ignore_reads_finishing_after_a_failed_restore() -> None:
  """When one array of a damaged checkpoint cannot be read, Orbax's restore fails at once and
  closes its event loop while TensorStore still reads the others; each of those reads then
  reports the closed loop as an unraisable exception (a traceback on stderr, dozens for one
  damaged checkpoint) around the one line that says what happened. They are dropped, from the
  first restore on (some arrive before the restore raises); every other unraisable exception
  still goes to the previous hook."""
  previous = sys.unraisablehook

  def hook(unraisable):
    if not _is_late_read_callback(unraisable):
      previous(unraisable)

  sys.unraisablehook = hook


def _normalisation_tree(normalisation) -> dict[str, Any]:
  tree = {'mean': normalisation.mean, 'std': normalisation.std}
  if normalisation.zca_matrix is not None:
    tree['zca_matrix'] = normalisation.zca_matrix
  return tree


def restore_normalisation(checkpointer: Checkpointer, step: int, image_shape, zca: bool,
                          sharding):
  """The Normalisation saved at `step`, restored into `sharding` (from the dataset JSON's image
  shape and whether the run used ZCA)."""
  channels, dim = image_shape[-1], math.prod(image_shape)
  target = {'mean': jax.ShapeDtypeStruct((channels,), 'float32', sharding=sharding),
            'std': jax.ShapeDtypeStruct((channels,), 'float32', sharding=sharding)}
  if zca:
    target['zca_matrix'] = jax.ShapeDtypeStruct((dim, dim), 'float32', sharding=sharding)
  tree = checkpointer.restore_items(step, {'normalisation': target})['normalisation']
  return preprocessing.Normalisation(tree['mean'], tree['std'], tree.get('zca_matrix'))


@functools.cache
def lpta_version() -> dict[str, str | None]:
  """{'lpta': lpta.__version__, 'git_commit': the commit of the git checkout lpta is imported
  from (with '-dirty' when tracked files differ from it), or None when it is not one}."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(lpta.__file__)))
  commit = None
  if os.path.exists(os.path.join(root, '.git')):
    try:
      commit = subprocess.run(['git', '-C', root, 'rev-parse', 'HEAD'], capture_output=True,
                              text=True, check=True, timeout=10).stdout.strip()
      changed = subprocess.run(['git', '-C', root, 'status', '--porcelain',
                                '--untracked-files=no'], capture_output=True, text=True,
                               check=True, timeout=10).stdout.strip()
      commit += '-dirty' if changed else ''
    except (OSError, subprocess.SubprocessError):
      commit = None
  return {'lpta': lpta.__version__, 'git_commit': commit}


def write_config_json(workdir: epath.Path, config: ml_collections.ConfigDict) -> None:
  """<workdir>/config.json: the run's resolved config, with the lpta version that wrote it
  under 'lpta_version' (lpta_version())."""
  resolved = {'lpta_version': lpta_version(), **json.loads(config.to_json_best_effort())}
  (workdir / 'config.json').write_text(json.dumps(resolved, indent=2) + '\n')


def refuse_incompatible_resume(directory: epath.Path, config: ml_collections.ConfigDict,
                               added_values: Mapping[str, Any]) -> None:
  """CheckpointError, before anything is read or written, if the newest readable checkpoint
  under `directory` was written with a config that this run may not resume with
  (describe_config_change)."""
  if not directory.is_dir():
    return
  reader = Checkpointer(directory, read_only=True)
  try:
    for step in reversed(reader.all_steps()):
      try:
        saved_config = reader.read_json(step, 'config')
      except CheckpointError:
        continue  # damaged: resume says so and falls back
      change = describe_config_change(saved_config, config, added_values)
      if change:
        raise CheckpointError(
            f'{directory} holds checkpoints of a run whose {change}; a resumed run keeps the '
            'model, data, schedule and seed it started with. Use another --workdir, or the '
            'config that wrote them.')
      return
  finally:
    reader.close()


def resume(checkpointer: Checkpointer, state, damaged_folder: epath.Path):
  """The latest intact checkpoint restored into `state` (a TrainState), or `state` if there
  is none.

  Damaged newer checkpoints are moved to `damaged_folder` (nothing is deleted), with one
  warning line each; if no checkpoint can be read, nothing is moved and the run is refused
  (CheckpointError).
  """
  steps = checkpointer.all_steps()
  for step in reversed(steps):
    try:
      restored = checkpointer.restore_state(step, state)
    except CheckpointError as error:
      logging.warning('The checkpoint at step %d is damaged (%s); trying the one before.', step,
                      str(error).split(' (', 1)[-1].rstrip(').'))
      continue
    damaged = [newer for newer in steps if newer > step]
    if damaged:
      _set_aside(checkpointer, damaged, damaged_folder)
    logging.info('Resuming from the checkpoint at step %d in %s.', step, checkpointer.directory)
    return restored
  if steps:
    raise CheckpointError(
        f'none of the checkpoints in {checkpointer.directory} (steps '
        f'{", ".join(map(str, steps))}) can be read, and nothing was changed; move them away or '
        'use another --workdir.')
  return state


def _set_aside(checkpointer: Checkpointer, steps, destination: epath.Path) -> None:
  if jax.process_index() == 0:
    destination.mkdir(parents=True, exist_ok=True)
    for step in steps:
      target = destination / f'{step}-{int(time.time())}'
      (checkpointer.directory / str(step)).rename(target)
      logging.warning('Moved the damaged checkpoint at step %d to %s.', step, target)
  multihost_utils.sync_global_devices('lpta: damaged checkpoints set aside')
  checkpointer.reload()
