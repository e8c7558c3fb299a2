"""Orbax checkpoints of a training run: save, keep the latest and the best, resume, restore parts.

A checkpoint is a step folder under `<workdir>/checkpoints/` with separate items, so a reader can
restore only what it needs (a teacher or an evaluator reads `params` and `batch_stats`):

  params, batch_stats, opt_state   pytrees (Orbax StandardSave)
  progress                         JSON {'step': int}
  config                           JSON, the run's resolved config

The test accuracy passed to `save` ranks checkpoints for "keep the best N".
"""

import json
import pathlib
from typing import Any, Mapping

from absl import logging
import jax
import ml_collections
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from lpta.errors import CheckpointError

ARRAY_ITEMS = ('params', 'batch_stats', 'opt_state')
# Config fields that define what the saved arrays are; resuming with any other value is refused.
MODEL_DEFINING_FIELDS = ('model', 'data.name', 'half_precision')


def _nested_get(config: Mapping[str, Any], dotted: str):
  for key in dotted.split('.'):
    config = config[key]
  return config


def describe_model_mismatch(saved_config: Mapping[str, Any],
                            config: ml_collections.ConfigDict) -> str | None:
  """Returns 'field: saved vs now' for the first model-defining difference, or None."""
  current = json.loads(config.to_json_best_effort())
  for field in MODEL_DEFINING_FIELDS:
    saved_value, current_value = _nested_get(saved_config, field), _nested_get(current, field)
    if isinstance(saved_value, dict):
      for key in sorted(set(saved_value) | set(current_value)):
        if saved_value.get(key) != current_value.get(key):
          return (f'config.{field}.{key} is {saved_value.get(key)!r} in the checkpoint and '
                  f'{current_value.get(key)!r} now')
    elif saved_value != current_value:
      return f'config.{field} is {saved_value!r} in the checkpoint and {current_value!r} now'
  return None


class Checkpointer:
  """Saves and restores training state under `directory` with an Orbax CheckpointManager.

  Keeps the `keep_latest` most recent checkpoints and the `keep_best` ones with the highest test
  accuracy. Writes are asynchronous; `close()` waits for them.
  """

  def __init__(self, directory: pathlib.Path | str, keep_latest: int = 2, keep_best: int = 1,
               read_only: bool = False):
    self.directory = pathlib.Path(directory).absolute()
    policies = [checkpoint_managers.LatestN(n=keep_latest)]
    if keep_best:
      policies.append(checkpoint_managers.BestN(
          get_metric_fn=lambda metrics: metrics['test_accuracy'], n=keep_best,
          keep_checkpoints_without_metrics=False))
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            preservation_policy=checkpoint_managers.AnyPreservationPolicy(policies),
            enable_async_checkpointing=True, create=not read_only, read_only=read_only))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state, config: ml_collections.ConfigDict,
           test_accuracy: float | None = None) -> None:
    """Starts an asynchronous save of `state` (a TrainState) at `step`."""
    items = {name: ocp.args.StandardSave(getattr(state, name)) for name in ARRAY_ITEMS}
    items['progress'] = ocp.args.JsonSave({'step': step})
    items['config'] = ocp.args.JsonSave(json.loads(config.to_json_best_effort()))
    metrics = None if test_accuracy is None else {'test_accuracy': test_accuracy}
    self._manager.save(step, args=ocp.args.Composite(**items), metrics=metrics, force=True)

  def saved_config(self, step: int) -> dict[str, Any]:
    """The config saved with the checkpoint at `step`."""
    return self._manager.restore(
        step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))['config']

  def restore(self, step: int, state, config: ml_collections.ConfigDict,
              items: tuple[str, ...] = ARRAY_ITEMS):
    """Returns `state` with `items` and its step restored from the checkpoint at `step`.

    `state` gives the structure, shapes and shardings to restore into. A checkpoint written for a
    different model is refused with a CheckpointError before any array is read.
    """
    mismatch = describe_model_mismatch(self.saved_config(step), config)
    if mismatch:
      raise CheckpointError(
          f'{self.directory} holds checkpoints of a different model ({mismatch}); use another '
          '--workdir, or the config that wrote them.')
    restored = self.restore_items(step, {name: getattr(state, name) for name in items})
    return state.replace(step=restored['progress']['step'], **restored['arrays'])

  def restore_items(self, step: int, targets: Mapping[str, Any]) -> dict[str, Any]:
    """Reads only the array items named in `targets` (and `progress`) at `step`.

    Each target is a pytree of arrays or jax.ShapeDtypeStruct giving the structure, shapes and
    shardings to restore into. Returns {'arrays': {name: tree}, 'progress': {'step': int}}.
    """
    args = {name: ocp.args.StandardRestore(jax.tree.map(ocp.utils.to_shape_dtype_struct, target))
            for name, target in targets.items()}
    args['progress'] = ocp.args.JsonRestore()
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(**args))
    except (ValueError, KeyError, FileNotFoundError) as error:
      raise CheckpointError(
          f'cannot restore step {step} from {self.directory} ({type(error).__name__}: '
          f'{str(error).splitlines()[0]}); the checkpoint may be incomplete or from another '
          'version of the model.') from error
    logging.info('Restored %s from %s at step %d.', ', '.join(targets), self.directory, step)
    return {'arrays': {name: restored[name] for name in targets},
            'progress': restored['progress']}

  def close(self) -> None:
    """Waits for pending writes and releases the manager."""
    self._manager.wait_until_finished()
    self._manager.close()
