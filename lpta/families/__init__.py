"""Model families: what the train loop, `load_run` and the figures need to know about a model.

A family (Learn To Pay Attention, attention transfer, ...) is one registered class. It declares
the `config.model` fields of each model it builds (`fields`, lpta.config_fields: default, meaning,
check, and the value of runs saved before a field existed), from which come the configs'
defaults (`default_config`) and their checks. An instance is bound to one `config.model` and
supplies:
  - `build`: the Flax module. Every module maps normalised images [B, H, W, C] to
    (logits [B, K], aux dict) and takes `train: bool`;
  - `objective`: what a run of it minimises (default: the one `config.transfer.method` names,
    lpta.objectives);
  - `eval_metrics` and `eval_outputs`: its evaluation metrics (a `clu.metrics.Collection`) and
    the per-example values they are computed from;
  - `rng_streams`: the PRNG streams its modules draw from in training (e.g. 'dropout');
  - `figure_arrays` (on the device, from the model's aux) and `draw_figure` (on the host): its
    figure;
  - `transfer_points`: the activations that attention transfer compares (none by default);
  - `feature_layer`: the layer that lpta.maps explains with activation maps and Grad-CAM.
lpta.train, lpta.runs and lpta.predict call only this interface, so a new family adds a file that
registers itself here (see docs/architecture.md, "Add a model family") and touches no loop code.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from clu import metrics
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lpta import config_fields as cf
from lpta import objectives
from lpta import summaries
from lpta.errors import ConfigError

# Model name (`config.model.name`) -> family class.
REGISTRY: dict[str, type['Family']] = {}

# Forward pass in inference mode: (images [B, H, W, C], rng, **module keyword arguments) ->
# (logits [B, K], aux).
Predict = Callable[..., tuple[jax.Array, dict[str, Any]]]


def classification_outputs(logits: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
  """Per-example values of ClassificationMetrics from logits [B, K] and labels [B]."""
  top_k = min(5, logits.shape[-1])
  top5_correct = jnp.any(jax.lax.top_k(logits, top_k)[1] == labels[:, None], axis=-1)
  return {'loss': objectives.cross_entropy(logits, labels), 'logits': logits,
          'labels': labels, 'top5_correct': top5_correct.astype(jnp.float32)}


@flax.struct.dataclass
class ClassificationMetrics(metrics.Collection):
  """Mean cross-entropy, top-1 and top-5 accuracy over the unmasked examples."""
  loss: metrics.Average.from_output('loss')
  accuracy: metrics.Accuracy
  top5_accuracy: metrics.Average.from_output('top5_correct')


class Family:
  """A model family bound to one `config.model`. Subclasses set `name` and `fields` and
  implement `build`; the other members have defaults for image classifiers."""
  name: ClassVar[str]
  # {`config.model.name` it builds: the fields of that model's config.model}.
  fields: ClassVar[Mapping[str, Sequence[cf.Field]]]
  model_names: ClassVar[tuple[str, ...]]  # the keys of `fields`
  rng_streams: ClassVar[tuple[str, ...]] = ()  # PRNG streams used in training, e.g. 'dropout'
  eval_metrics: ClassVar[type[metrics.Collection]] = ClassificationMetrics
  # The module path whose output activation maps and Grad-CAM read (lpta.maps); None: the last
  # module with a spatial output.
  feature_layer: ClassVar[str | None] = None
  # Whether `figure_arrays` are attention maps [N, h, w] (lpta.maps scores them as the model's
  # own maps) rather than something else to draw, such as glimpse locations.
  figure_arrays_are_maps: ClassVar[bool] = True
  # The labels of `parameter_groups` that config.optimizer.groups may give their own optimiser.
  parameter_group_names: ClassVar[tuple[str, ...]] = ()

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    if 'fields' in cls.__dict__:
      cls.model_names = tuple(cls.fields)

  def __init__(self, model_config: ml_collections.ConfigDict):
    # Checked against the declarations, with the values of fields added since a run was saved.
    self.model_config = cf.validated(model_config, self.fields[model_config.name], 'config.model',
                                     owner=f'config.model.name={model_config.name!r}')
    self.validate()

  @classmethod
  def default_config(cls, model_name: str) -> ml_collections.ConfigDict:
    """config.model for `model_name` with every field at its default."""
    return cf.default_config(cls.fields[model_name], name=model_name)

  def validate(self) -> None:
    """Raises ConfigError naming the field for a value that the fields' own checks accept but
    that does not fit the rest of `self.model_config` (none by default)."""

  def settings(self, names: Sequence[str] | None = None) -> dict[str, Any]:
    """{field: value} of the model's fields (or of `names`), lists as tuples: the keyword
    arguments of a Flax module whose attributes are named like the fields."""
    names = names or [field.name for field in self.fields[self.model_config.name]]
    return {name: tuple(value) if isinstance(value, list) else value
            for name, value in ((name, self.model_config[name]) for name in names)}

  def build(self, num_classes: int, dtype: jnp.dtype) -> nn.Module:
    """The Flax module; parameters float32, computation in `dtype`."""
    raise NotImplementedError

  def rngs(self, key: jax.Array) -> dict[str, jax.Array]:
    """One key per stream of `rng_streams`, derived from `key`."""
    return {stream: jax.random.fold_in(key, index)
            for index, stream in enumerate(self.rng_streams)}

  def objective(self, config: ml_collections.ConfigDict, model: nn.Module,
                image_shape: Sequence[int], teacher=None) -> objectives.Objective:
    """What the train step minimises; `teacher` is a lpta.runs.Run or None."""
    _, (_, aux) = abstract_variables_and_outputs(model, image_shape)
    return objectives.create(config.transfer, self.transfer_points(aux), teacher)

  def model_inputs(self, batch: dict[str, jax.Array],
                   train_progress: jax.Array | None = None) -> dict[str, jax.Array]:
    """The model's keyword inputs besides the images, from a batch of training or evaluation
    data ({'image': [B, H, W, C], ...}) and, in training, the share of the run's steps done (a
    scalar in [0, 1)); none by default."""
    del batch, train_progress
    return {}

  def eval_outputs(self, predict: Predict, images: jax.Array, batch: dict[str, jax.Array],
                   rng: jax.Array) -> dict[str, jax.Array]:
    """Per-example values for `eval_metrics.single_from_model_output` (the mask is added by
    the loop). images: normalised [B, H, W, C]; batch: the raw batch ('label' [B], ...)."""
    logits, _ = predict(images, rng)
    return classification_outputs(logits, batch['label'])

  def parameter_groups(self, params) -> Any:
    """A tree like `params` of their group labels (lpta.optimizers: e.g. 'policy', or FROZEN for
    parameters that training never changes, such as a frozen trunk), each trained with
    `config.optimizer.groups.<label>`; None (the default): one group."""
    del params
    return None

  def transfer_points(self, aux: dict[str, Any]) -> tuple[jax.Array, ...]:
    """Activations [B, h_j, w_j, C_j] compared by activation-based attention transfer."""
    del aux
    return ()

  def figure_arrays(self, aux: dict[str, Any]) -> tuple[jax.Array, ...]:
    """Attention maps [N, h, w] in [0, 1] to overlay on the images (runs under jit)."""
    del aux
    return ()

  def draw_figure(self, images: np.ndarray, arrays: Sequence[np.ndarray],
                  teacher_arrays: Sequence[np.ndarray] = ()) -> np.ndarray | None:
    """The figure [H, W, 3] in [0, 1] from uint8 images [N, H, W, C] and `figure_arrays`
    (and a teacher's, shown after each of the student's maps when there are as many); None
    when the model has nothing to draw."""
    maps = list(arrays)
    if maps and len(teacher_arrays) == len(maps):
      maps = [m for pair in zip(maps, teacher_arrays) for m in pair]
    return summaries.overlay_grid(images, maps) if maps else None


def register(family_class: type[Family]) -> type[Family]:
  """Class decorator: makes `config.model.name` in `family_class.model_names` build it."""
  for model_name in family_class.model_names:
    if model_name in REGISTRY and REGISTRY[model_name] is not family_class:
      raise ValueError(f'model name {model_name!r} is already registered by '
                       f'{REGISTRY[model_name].__name__}.')
    REGISTRY[model_name] = family_class
  return family_class


def get(model_config: ml_collections.ConfigDict) -> Family:
  """The family of `config.model`, validated; ConfigError for an unknown name or bad value."""
  return family_class(model_config.get('name'))(model_config)


def family_class(model_name: str) -> type[Family]:
  """The family that builds `model_name`; ConfigError for a name no family builds."""
  if model_name not in REGISTRY:
    raise ConfigError(f'config.model.name={model_name!r} is not a model; use one of '
                      f'{", ".join(sorted(REGISTRY))}.')
  return REGISTRY[model_name]


def default_config(model_name: str) -> ml_collections.ConfigDict:
  """config.model of `model_name` with every field at its default (the family bases of configs/
  start from it)."""
  return family_class(model_name).default_config(model_name)


def added_values() -> dict[str, Any]:
  """{'model.<field>': value} of the model fields that configs saved before them lack."""
  return cf.merge_added(*(cf.added_values('model', fields)
                          for family in dict.fromkeys(REGISTRY.values())
                          for fields in family.fields.values()))


def compute_dtype(half_precision: bool) -> jnp.dtype:
  return jnp.bfloat16 if half_precision else jnp.float32


def create_model(model_config: ml_collections.ConfigDict, num_classes: int,
                 half_precision: bool = False) -> nn.Module:
  """The Flax module for `config.model` (validated first)."""
  return get(model_config).build(num_classes, compute_dtype(half_precision))


def abstract_variables_and_outputs(model: nn.Module, image_shape: Sequence[int],
                                   batch_size: int = 1):
  """(variables, (logits, aux)) of `model` on [batch_size, *image_shape] images, as trees of
  jax.ShapeDtypeStruct: shapes and dtypes only, nothing is computed."""
  images = jax.ShapeDtypeStruct((batch_size, *image_shape), jnp.float32)
  output, variables = jax.eval_shape(
      lambda x: model.init_with_output(jax.random.key(0), x, train=False), images)
  return variables, output


def count_parameters(params) -> int:
  """Number of trainable parameters in a tree of arrays or shapes."""
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(params))


# The built-in families register themselves on import.
from lpta.families import attention_transfer  # pylint: disable=g-import-not-at-top,wrong-import-position
from lpta.families import baselines  # pylint: disable=g-import-not-at-top,wrong-import-position
from lpta.families import fine_grained  # pylint: disable=g-import-not-at-top,wrong-import-position
from lpta.families import glimpse  # pylint: disable=g-import-not-at-top,wrong-import-position
from lpta.families import ltpa  # pylint: disable=g-import-not-at-top,wrong-import-position
