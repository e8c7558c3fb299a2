"""Fine-tuning: a new run that starts from the parameters of another lpta run (`config.init_from`).

The fields of `config.init_from` are declared in FIELDS: the run to start from, its step, and
modules to re-initialise anyway.

Every parameter and BatchNorm statistic of the new model is matched with the source run's by its
path (`backbone/conv7/Conv_0/kernel`):
  - same path, same shape: loaded, bit for bit;
  - same path, another shape, in a layer whose shape depends on the number of classes (the
    classifier; found by building the model for one class more): re-initialised;
  - absent from the source (e.g. attention modules of a model fine-tuned from its baseline),
    or excluded: re-initialised;
  - same path and another shape anywhere else: refused (CheckpointError), since the networks
    differ; exclude that module to re-initialise it on purpose.
What the source has and the new model does not is not used. The log lists every module that was
loaded and every one that was not. The new run fits its own input statistics on its own data.

On resume the run's own checkpoint is restored; `init_from` is read only by a run that starts.
"""

from collections.abc import Mapping, Sequence
import dataclasses
from typing import Any

from absl import logging
import flax.traverse_util
import ml_collections

from lpta import config_fields as cf
from lpta import families
from lpta import runs
from lpta.errors import CheckpointError, ConfigError

COLLECTIONS = ('params', 'batch_stats')
FIELDS = (
    cf.Field('workdir', None, 'The workdir (path or URL) of an earlier run, an imported one of '
             'python -m lpta.import_weights too; None: train from scratch.',
             cf.optional(cf.STRING), kind=str),
    cf.Field('step', 'latest', "Its checkpoint: 'latest', 'best' (by validation accuracy) or a "
             'step number.', cf.Check("must be 'latest', 'best' or a step number",
                                      lambda step: step in ('latest', 'best')
                                      or str(step).isdigit())),
    cf.Field('exclude', (), "Module paths to re-initialise even where they fit, e.g. ('global',) "
             'for a layer whose input size depends on the image size.',
             cf.tuple_of(cf.STRING, 'module paths, e.g. "(\'global\',)"')),
)


@dataclasses.dataclass(frozen=True)
class Report:
  """What fine-tuning took from the source run, as sorted 'collection/module/.../leaf' paths."""
  source: str  # the checkpoint folder read
  loaded: tuple[str, ...]
  reinitialised: tuple[str, ...]
  unused: tuple[str, ...]  # in the source, not in the new model

  def lines(self) -> list[str]:
    """One log line per group, listing the modules."""
    return [f'Fine-tuning from {self.source}:',
            f'  loaded ({len(self.loaded)} arrays): {_modules(self.loaded)}',
            f'  re-initialised ({len(self.reinitialised)}): {_modules(self.reinitialised)}',
            f'  not used from the source ({len(self.unused)}): {_modules(self.unused)}']


def validate(init_from: ml_collections.ConfigDict) -> None:
  """ConfigError for a bad `config.init_from` value."""
  cf.validated(init_from, FIELDS, 'config.init_from')


def initialise_from(init_from: ml_collections.ConfigDict, variables: Mapping[str, Any],
                    family: families.Family, num_classes: int, image_shape: Sequence[int],
                    mesh) -> tuple[dict[str, Any], Report]:
  """(variables, report): `variables` ({'params'[, 'batch_stats']} of the freshly initialised
  model) with every array that the run in `init_from.workdir` has at the same path and shape.

  Raises:
    CheckpointError: no such run or checkpoint, or an array of another shape outside the
      class-dependent layers and `init_from.exclude`.
  """
  source = runs.load_run(init_from.workdir, init_from.step, mesh)
  fresh = {collection: flax.traverse_util.flatten_dict(dict(variables[collection]), sep='/')
           for collection in COLLECTIONS if collection in variables}
  class_dependent = _class_dependent_paths(fresh, family, num_classes, image_shape)
  excluded = tuple(path.strip('/') for path in init_from.exclude)
  _refuse_unmatched(excluded, fresh)
  loaded, reinitialised, unused, merged = [], [], [], {}
  for collection, new in fresh.items():
    new = dict(new)
    old = flax.traverse_util.flatten_dict(dict(source.variables.get(collection, {})), sep='/')
    unused += [f'{collection}/{path}' for path in old if path not in new]
    for path, array in new.items():
      name = f'{collection}/{path}'
      if path not in old or any(_is_under(path, module) for module in excluded):
        reinitialised.append(name)
      elif old[path].shape == array.shape:
        new[path] = old[path]
        loaded.append(name)
      elif name in class_dependent:
        reinitialised.append(name)
      else:
        raise CheckpointError(
            f'config.init_from: {name} has shape {tuple(old[path].shape)} in {source.checkpoint} '
            f'and {tuple(array.shape)} in this model; fine-tune from a run of the same network, '
            f"or re-initialise that module with --config.init_from.exclude=\"('"
            f"{path.rsplit('/', 2)[0]}',)\".")
    merged[collection] = flax.traverse_util.unflatten_dict(new, sep='/')
  report = Report(source.checkpoint, tuple(sorted(loaded)), tuple(sorted(reinitialised)),
                  tuple(sorted(unused)))
  if not loaded:
    raise CheckpointError(f'config.init_from: {source.checkpoint} shares no parameter with this '
                          'model (no path and shape in common); check config.model.')
  for line in report.lines():
    logging.info('%s', line)
  return merged, report


def _is_under(path: str, module: str) -> bool:
  return path == module or path.startswith(module + '/')


def _refuse_unmatched(excluded: Sequence[str], fresh: Mapping[str, Mapping[str, Any]]) -> None:
  """ConfigError for an `init_from.exclude` entry that names no module of the new model
  (`fresh`: {collection: {path: array}})."""
  paths = [path for flat in fresh.values() for path in flat]
  unmatched = [module for module in excluded if not any(_is_under(p, module) for p in paths)]
  if unmatched:
    top = sorted({path.split('/')[0] for path in paths})
    raise ConfigError(f'config.init_from.exclude names {", ".join(map(repr, unmatched))}, which '
                      f'is no module of this model; use paths under {", ".join(top)} (without '
                      "'params/'), e.g. 'global'.")


def _class_dependent_paths(fresh: Mapping[str, Mapping[str, Any]], family: families.Family,
                           num_classes: int, image_shape: Sequence[int]) -> set[str]:
  """'collection/path' of the arrays of `fresh` ({collection: {path: array}}, the model for
  `num_classes`) whose shape changes in the model for one class more."""
  abstract, _ = families.abstract_variables_and_outputs(
      family.build(num_classes + 1, families.compute_dtype(False)), image_shape)
  more = flax.traverse_util.flatten_dict(dict(abstract), sep='/')
  return {f'{collection}/{path}' for collection, flat in fresh.items()
          for path, array in flat.items()
          if getattr(more.get(f'{collection}/{path}'), 'shape', None) != array.shape}


def _modules(paths: Sequence[str]) -> str:
  """The modules of leaf paths ('params/backbone/conv1/Conv_0/kernel' -> 'backbone/conv1/Conv_0'),
  each once, in order."""
  modules = dict.fromkeys(path.split('/', 1)[1].rsplit('/', 1)[0] for path in paths)
  return ', '.join(modules) or 'none'
