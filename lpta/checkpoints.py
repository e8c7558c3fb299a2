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
  metrics                          JSON, the evaluation metrics at that step (Orbax's item)

The `keep_latest` newest checkpoints are kept, and the `keep_best` ones with the highest
validation accuracy; the validation accuracy is written with each checkpoint, so a resumed run
still knows which checkpoints are the best. Checkpoints saved without it (no validation split,
or an interrupted run) are kept only while they are among the newest.
"""

import json
import math
import os
from typing import Any, Mapping

from absl import logging
from etils import epath
import jax
import ml_collections
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from lpta.data import preprocessing
from lpta.errors import CheckpointError, ConfigError

TRAIN_STATE_ITEMS = ('params', 'batch_stats', 'opt_state')
JSON_ITEMS = ('progress', 'config', 'dataset')
BEST_METRIC = 'validation_accuracy'
# Config fields that may change when a run resumes: how it is logged, evaluated and stored, and
# where its data lives. Any other change (model, data, schedule, seed, ...) is refused.
RESUMABLE_CHANGES = ('eval_batch_size', 'eval_every_epochs', 'log_every_steps',
                     'keep_checkpoints', 'keep_best_checkpoints', 'num_attention_images',
                     'data.data_dir', 'data.manual_dir', 'teacher.workdir')
# The evaluators scheduled during training; where a new run's parameters came from (a resumed
# run restores its own).
RESUMABLE_PREFIXES = ('evals.', 'init_from.')
# Fields added after runs were saved without them: a config that lacks one has this value.
# The families read their config.model entries from here too (lpta.families.added_fields).
ADDED_FIELDS = {'data.crop_to_box': True, 'optimizer.dampening': 0., 'optimizer.decay_factors': [],
                'model.junction_gradient_averaging': False, 'model.first_pool_size': 2,
                'model.preactivation': False, 'model.train_trajectories': 1}


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


def _flatten(tree: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      flat.update(_flatten(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = value
  return flat


def describe_config_change(saved_config: Mapping[str, Any],
                           config: ml_collections.ConfigDict) -> str | None:
  """'config.x is A in the checkpoint and B now' for the first field that a resumed run may
  not change (any but RESUMABLE_CHANGES), or None."""
  saved = {**ADDED_FIELDS, **_flatten(saved_config)}
  current = {**ADDED_FIELDS, **_flatten(json.loads(config.to_json_best_effort()))}
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
  lines = str(error).strip().splitlines()
  return f'{type(error).__name__}: {lines[0] if lines else ""}'


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
    """'latest', 'best' or a step number -> a step that has a checkpoint (CheckpointError if
    not)."""
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
    if metrics is not None and BEST_METRIC not in metrics:
      metrics = None  # Orbax ranks every checkpoint with metrics; these cannot be ranked.
    self._manager.save(step, args=ocp.args.Composite(**items), metrics=metrics, force=True)

  def read_json(self, step: int, name: str) -> dict[str, Any]:
    """The JSON item `name` ('progress', 'config' or 'dataset') at `step`."""
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
