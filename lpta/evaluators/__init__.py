"""Evaluators: numbers and plots computed from a trained run, which they never retrain.

  python -m lpta.evaluate --workdir=W --eval=NAME [--eval.FIELD=VALUE ...]

An evaluator is one registered class (like a model family): `fields` (its config fields, each
declared once with its default, meaning and check, lpta.config_fields: those of every evaluator
in `Evaluator.fields`, those of the evaluators that score maps in MAP_FIELDS, then its own), from
which come `default_config` and `validate`, and `evaluate(run, output)`, which reads the run
(lpta.load_run) and data, and returns its scalar results. `evaluate_run` writes them under
`<run workdir>/eval/<name>/`: `results.json` (the run, its step, the evaluator's config and the
results), TensorBoard scalars `<name>/<result>` at the run's step, and the evaluator's own PNG
plots and CSV files of per-example values. A new evaluator adds a file that registers itself here.
"""

from collections.abc import Iterator, Mapping, Sequence
import csv
import dataclasses
import json
from typing import Any, ClassVar

from etils import epath
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lpta import attributions
from lpta import config_fields as cf
from lpta import data
from lpta import maps
from lpta import runs
from lpta.data import batching
from lpta.data import preprocessing
from lpta.errors import ConfigError

# Evaluator name -> class.
REGISTRY: dict[str, type['Evaluator']] = {}


@dataclasses.dataclass(frozen=True)
class Output:
  """Where one evaluator writes: `directory` = <workdir>/eval/<name>/."""
  directory: epath.Path

  def path(self, filename: str) -> epath.Path:
    self.directory.mkdir(parents=True, exist_ok=True)
    return self.directory / filename

  def save_figure(self, figure, filename: str) -> epath.Path:
    """Saves a matplotlib figure as PNG and closes it."""
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
    path = self.path(filename)
    with path.open('wb') as file:
      figure.savefig(file, format='png', dpi=120, bbox_inches='tight')
    plt.close(figure)
    return path

  def write_csv(self, filename: str, columns: Mapping[str, Sequence[Any]]) -> epath.Path:
    """One column per key, one row per example."""
    path = self.path(filename)
    names = list(columns)
    with path.open('w') as file:
      writer = csv.writer(file)
      writer.writerow(names)
      writer.writerows(zip(*(columns[name] for name in names)))
    return path


class Evaluator:
  """An evaluator bound to its config; subclasses set `name`, add their fields to `fields` and
  implement `evaluate`."""
  name: ClassVar[str]
  fields: ClassVar[tuple[cf.Field, ...]] = (
      cf.Field('split', 'test', "The split of the run's data set it reads (evaluators only "
               'report, they select nothing).', cf.one_of(data.EVAL_SPLITS, 'an eval split')),
      cf.Field('max_examples', 2000, 'How many examples of the split it reads, the first ones; '
               'None: all.',
               cf.Check(cf.POSITIVE_INTEGER.refusal, cf.optional(cf.POSITIVE_INTEGER).accepts)),
      cf.Field('batch_size', 250, 'Examples per jitted call.', cf.POSITIVE_INTEGER),
      cf.Field('seed', 0, 'For anything random: random orders, attack starts, rng streams of the '
               'model.', cf.integer(0)),
  )

  @classmethod
  def default_config(cls) -> ml_collections.ConfigDict:
    """The evaluator's fields with their defaults."""
    return cf.default_config(cls.fields)

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.validate()

  def validate(self) -> None:
    """ConfigError naming the field for a bad value (subclasses add the checks that involve
    several fields)."""
    names = sorted(field.name for field in self.fields)
    unknown = sorted(set(self.config) - set(names))
    if unknown:
      raise ConfigError(f'--eval.{unknown[0]} is not a field of the {self.name} evaluator; its '
                        f'fields are {", ".join(names)}.')
    cf.validated(self.config, self.fields, '--eval', f'the {self.name} evaluator')

  @property
  def output_name(self) -> str:
    """The folder under <workdir>/eval/ and the TensorBoard prefix of its results (the name,
    unless settings that change what is measured must not overwrite each other)."""
    return self.name

  def evaluate(self, run: runs.Run, output: Output) -> dict[str, float]:
    """Scalar results (also plots and CSVs written through `output`)."""
    raise NotImplementedError


_SETTINGS = attributions.Settings()
_MAP_KINDS = cf.tuple_of(cf.one_of(maps.KINDS), 'map kinds')

# The fields of the evaluators that score maps (lpta.maps).
MAP_FIELDS = (
    cf.Field('maps', ('gradcam',), f'The map kinds to score, distinct, among '
             f'{", ".join(maps.KINDS)}.',
             cf.Check(f'must be distinct kinds of {", ".join(maps.KINDS)}', lambda kinds: (
                 _MAP_KINDS.accepts(kinds) and 0 < len(set(kinds)) == len(kinds))),
             hint='(e.g. --eval.maps="(\'attention\', \'gradcam\')")'),
    cf.Field('attention_level', None, "The level of the 'attention' maps (1 for L1, ...); None: "
             'their mean.', cf.optional(cf.POSITIVE_INTEGER), kind=int),
    cf.Field('target', 'predicted', "The class the CAM-style maps and pixel attributions explain: "
             "'predicted' or 'label'.", cf.one_of(maps.TARGETS, 'a class to explain')),
    cf.Field('ig_steps', _SETTINGS.steps, "Gauss–Legendre nodes of 'integrated_gradients'.",
             cf.POSITIVE_INTEGER, added=_SETTINGS.steps),
    cf.Field('ig_baseline', _SETTINGS.baseline, "The value of the 'integrated_gradients' baseline "
             "image and of 'occlusion' windows, in pixel units (0: black).", cf.number(0., 1.),
             added=_SETTINGS.baseline),
    cf.Field('smoothgrad_noise', _SETTINGS.noise, "The noise level σ of 'smoothgrad', in pixel "
             'units.', cf.POSITIVE_NUMBER, added=_SETTINGS.noise),
    cf.Field('smoothgrad_samples', _SETTINGS.samples, "Noisy copies averaged by 'smoothgrad'.",
             cf.POSITIVE_INTEGER, added=_SETTINGS.samples),
    cf.Field('occlusion_window', _SETTINGS.window, "The side of 'occlusion' windows, in pixels.",
             cf.POSITIVE_INTEGER, added=_SETTINGS.window),
    cf.Field('occlusion_stride', _SETTINGS.stride, "Pixels between 'occlusion' windows.",
             cf.POSITIVE_INTEGER, added=_SETTINGS.stride),
    cf.Field('map_chunk', _SETTINGS.chunk, 'Integration nodes, noise draws, windows or Score-CAM '
             'channels evaluated at once: memory is this many passes of the batch.',
             cf.POSITIVE_INTEGER, added=_SETTINGS.chunk),
)


def map_settings(config: ml_collections.ConfigDict) -> attributions.Settings:
  """The lpta.attributions.Settings of the map fields of `config`."""
  return attributions.Settings(
      steps=config.ig_steps, baseline=config.ig_baseline, noise=config.smoothgrad_noise,
      samples=config.smoothgrad_samples, window=config.occlusion_window,
      stride=config.occlusion_stride, chunk=config.map_chunk)


def map_function(run: runs.Run, kind: str, config: ml_collections.ConfigDict) -> maps.MapFunction:
  """lpta.maps.map_function of `kind` with the map fields of `config`."""
  return maps.map_function(run, kind, level=config.attention_level if kind == 'attention' else None,
                           target=config.target, settings=map_settings(config))


def compute_maps(run: runs.Run, compute: maps.MapFunction, arrays: Mapping[str, np.ndarray],
                 config: ml_collections.ConfigDict,
                 run_arrays: Mapping[str, Any] | None = None) -> np.ndarray:
  """float32 [N, H, W]: the maps `compute` (map_function) gives the examples `arrays` ({'image':
  uint8 [N, H, W, C], 'label': [N], ...}) in batches of `config.batch_size`, with the rng of
  `config.seed` and the network's arrays `run_arrays` (default: run.arrays)."""
  key = jax.random.key(config.seed)
  run_arrays = run.arrays if run_arrays is None else run_arrays
  return batched(lambda batch, _: compute(
      run_arrays, preprocessing.to_unit_range(jnp.asarray(batch['image'])), batch['label'], key),
                 arrays, config.batch_size)


def register(evaluator_class: type[Evaluator]) -> type[Evaluator]:
  """Class decorator: makes `--eval=<name>` run it."""
  REGISTRY[evaluator_class.name] = evaluator_class
  return evaluator_class


def get_class(name: str) -> type[Evaluator]:
  if name not in REGISTRY:
    raise ConfigError(f'--eval={name!r} is not an evaluator; use one of '
                      f'{", ".join(sorted(REGISTRY))}.')
  return REGISTRY[name]


def examples(run: runs.Run, config: ml_collections.ConfigDict,
             dataset: data.Dataset | None = None) -> dict[str, np.ndarray]:
  """The first `config.max_examples` examples of `config.split` of the run's data set (loaded
  here unless `dataset` is given): {'image': uint8 [N, H, W, C], 'label': [N], and e.g. 'box'}
  (whatever its batches carry)."""
  dataset = dataset or data.get(run.config.data).load()
  if config.split not in dataset.eval_splits:
    raise ConfigError(f'the run holds out no {config.split} split; use --eval.split=test.')
  limit = config.max_examples or dataset.num_examples[config.split]
  parts, count = [], 0
  for batch in dataset.eval_batches(config.split, config.batch_size):
    keep = batch.pop('mask') > 0
    parts.append({name: array[keep] for name, array in batch.items()})
    count += int(keep.sum())
    if count >= limit:
      break
  return {name: np.concatenate([part[name] for part in parts])[:limit] for name in parts[0]}


def batches(arrays: Mapping[str, np.ndarray], batch_size: int) -> Iterator[dict[str, np.ndarray]]:
  """`arrays` ({name: [N, ...]} with 'label') in batches of `batch_size`, the last zero-padded;
  each with 'mask' float32 [b] (1: a real example). One shape, so one compilation."""
  num_examples = len(arrays['label'])
  yield from batching.eval_batches(arrays, batch_size, -(-num_examples // batch_size))


# The field of config.evals.<name> besides the evaluator's own.
EVERY_EPOCHS = cf.Field('every_epochs', 1, 'Run the evaluator every this many epochs of '
                        'training, and at its end.', cf.POSITIVE_INTEGER)


def scheduled(evals: ml_collections.ConfigDict,
              process_count: int = 1) -> list[tuple[str, ml_collections.ConfigDict, int]]:
  """(name, evaluator config, every_epochs) of each evaluator that `config.evals` schedules
  during training. `config.evals.<name>` holds `every_epochs` (EVERY_EPOCHS) and any of the
  evaluator's fields (the others keep their defaults). ConfigError for a bad entry."""
  if len(evals) and process_count > 1:
    raise ConfigError('config.evals runs evaluators during single-process training only; with '
                      f'{process_count} processes, run python -m lpta.evaluate on the workdir '
                      'after training.')
  entries = []
  for name, fields in evals.items():
    fields = dict(fields)
    schedule = ml_collections.ConfigDict(
        {EVERY_EPOCHS.name: fields.pop(EVERY_EPOCHS.name, EVERY_EPOCHS.default)})
    every_epochs = cf.validated(schedule, (EVERY_EPOCHS,), f'config.evals.{name}').every_epochs
    evaluator_class = get_class(name)
    config = evaluator_class.default_config()
    unknown = sorted(set(fields) - set(config))
    if unknown:
      raise ConfigError(f'config.evals.{name}.{unknown[0]} is not a field of the {name} '
                        f'evaluator; its fields are {EVERY_EPOCHS.name}, '
                        f'{", ".join(sorted(config))}.')
    config.update(fields)
    evaluator_class(config)  # validates
    entries.append((name, config, every_epochs))
  return entries


def batched(function, arrays: Mapping[str, np.ndarray], batch_size: int):
  """`function(batch, index)` on each padded batch of `arrays` (see `batches`), its outputs (a
  tree of [b, ...] arrays) cut to the real examples and concatenated: a tree of [N, ...]."""
  parts = []
  for index, batch in enumerate(batches(arrays, batch_size)):
    real = batch['mask'] > 0
    parts.append(jax.tree.map(lambda x, real=real: np.asarray(x)[real], function(batch, index)))
  return jax.tree.map(lambda *values: np.concatenate(values), *parts)


def evaluate_run(run: runs.Run, name: str, config: ml_collections.ConfigDict,
                 writer=None) -> dict[str, float]:
  """Runs evaluator `name` with `config` on `run`; writes results.json and, with a CLU
  `writer`, the scalars at the run's step. Returns the scalar results."""
  evaluator = get_class(name)(config)
  output = Output(epath.Path(run.workdir) / 'eval' / evaluator.output_name)
  results = {key: float(value) for key, value in evaluator.evaluate(run, output).items()}
  record = {'workdir': str(run.workdir), 'checkpoint': run.checkpoint, 'step': run.step,
            'model': run.config.model.name, 'data': run.config.data.name,
            'config': config.to_dict(), 'results': results}
  with output.path('results.json').open('w') as file:
    json.dump(record, file, indent=2)
  if writer is not None:
    writer.write_scalars(run.step, {f'{evaluator.output_name}/{key}': value
                                    for key, value in results.items()})
    writer.flush()
  return results


# The built-in evaluators register themselves on import.
from lpta.evaluators import localisation  # pylint: disable=g-import-not-at-top,wrong-import-position
from lpta.evaluators import faithfulness  # pylint: disable=g-import-not-at-top,wrong-import-position
from lpta.evaluators import complexity  # pylint: disable=g-import-not-at-top,wrong-import-position
from lpta.evaluators import randomisation  # pylint: disable=g-import-not-at-top,wrong-import-position
from lpta.evaluators import explanations  # pylint: disable=g-import-not-at-top,wrong-import-position
from lpta.evaluators import probe  # pylint: disable=g-import-not-at-top,wrong-import-position
from lpta.evaluators import robustness  # pylint: disable=g-import-not-at-top,wrong-import-position
