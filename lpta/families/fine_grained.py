"""The fine-grained glimpse model (Sermanet et al. 2014; Visual-Attention-Pytorch) and its trunk
pretraining (lpta.models.fine_grained).

`config.model` fields:
  both: trunk ('resnet50' with the 5×5 stride-1 stem, or 'small_cnn'), small_trunk_widths (of
    'small_cnn'), glimpse_size (g, the side every crop is resized to: 96).
  'glimpse_trunk' (the pretraining network): head_units (1024). It trains on the sum of its four
    heads' cross-entropies; its accuracy is the three-resolution head's.
  'fine_grained_glimpse': trunk_workdir (the workdir of a 'glimpse_trunk' run whose trunk it
    starts from, or None for a random one), trunk_frozen (no update and inference-mode
    BatchNorm), num_glimpses, num_resolutions (k), start_size (glimpse sides (S/4)·start·2^j),
    location_std (σ, 0.2), hidden_units (LSTM, 2048), attention_units (1024), reinforce_weight,
    baseline_weight, eval_samples (S trajectories, 7). It trains on RAM's hybrid loss
    (lpta.families.glimpse.HybridLoss) and reports `accuracy` (mean locations) and
    `sampled_accuracy`; the figure draws the glimpses.
"""

import functools

from clu import metrics
import jax
import jax.numpy as jnp

from lpta import families
from lpta import objectives
from lpta import runs
from lpta import summaries
from lpta.errors import CheckpointError, ConfigError
from lpta.families import glimpse as glimpse_family
from lpta.models import fine_grained

_COMMON = ('trunk', 'small_trunk_widths', 'glimpse_size')
_FIELDS = {
    'glimpse_trunk': _COMMON + ('head_units',),
    'fine_grained_glimpse': _COMMON + (
        'trunk_workdir', 'trunk_frozen', 'num_glimpses', 'num_resolutions', 'start_size',
        'location_std', 'hidden_units', 'attention_units', 'reinforce_weight',
        'baseline_weight', 'eval_samples'),
}
_POSITIVE_INTEGERS = ('glimpse_size', 'head_units', 'num_glimpses', 'num_resolutions',
                      'start_size', 'hidden_units', 'attention_units', 'eval_samples')


def _trunk_settings(model_config) -> dict:
  """The fields a pretrained trunk must share with the glimpse model, comparably."""
  return {'trunk': model_config.get('trunk'),
          'small_trunk_widths': tuple(model_config.get('small_trunk_widths', ())),
          'glimpse_size': model_config.get('glimpse_size')}


class HeadsCrossEntropy(objectives.Objective):
  """The trunk pretraining loss: the sum of the heads' mean cross-entropies (seed §3.6)."""
  method = 'heads'

  def __init__(self):
    super().__init__(transfer=None)

  @property
  def term_names(self):
    return tuple(f'head{index}_loss' for index in range(len(fine_grained.PRETRAINING_HEADS)))

  def __call__(self, student, targets):
    terms = {f'head{index}_loss': objectives.cross_entropy(logits, student.labels).mean()
             for index, logits in enumerate(student.aux['head_logits'])}
    return sum(terms.values()), terms


@families.register
class FineGrainedGlimpse(families.Family):
  """The glimpse model on a (pretrained, frozen) trunk, and the trunk's pretraining network."""
  name = 'fine_grained_glimpse'
  model_names = ('fine_grained_glimpse', 'glimpse_trunk')
  rng_streams = ('location',)
  figure_arrays_are_maps = False  # glimpse locations

  def validate(self) -> None:
    config = self.model_config
    families.require_fields(config, _FIELDS[config.name])
    if config.trunk not in fine_grained.TRUNKS:
      raise ConfigError(f'config.model.trunk={config.trunk!r} is not valid; use one of '
                        f'{", ".join(fine_grained.TRUNKS)}.')
    for field in _POSITIVE_INTEGERS:
      value = config.get(field, 1)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f'config.model.{field}={value!r} must be a positive integer.')
    # The trunk's feature map of a glimpse must split into four quadrants.
    reduction = 16 if config.trunk == 'resnet50' else 2**len(config.small_trunk_widths)
    if config.glimpse_size % (2 * reduction):
      raise ConfigError(f'config.model.glimpse_size={config.glimpse_size} must be a multiple of '
                        f'{2 * reduction}, so that the {config.trunk} trunk\'s feature map '
                        'splits into four quadrants (96 for resnet50).')
    if config.name == 'fine_grained_glimpse' and not config.location_std > 0:
      raise ConfigError(f'config.model.location_std={config.location_std} must be positive.')

  def build(self, num_classes, dtype):
    config = self.model_config
    trunk = {'trunk': config.trunk, 'small_trunk_widths': tuple(config.small_trunk_widths),
             'glimpse_size': config.glimpse_size}
    if config.name == 'glimpse_trunk':
      return fine_grained.TrunkPretraining(num_classes=num_classes, head_units=config.head_units,
                                           dtype=dtype, **trunk)
    return fine_grained.FineGrainedGlimpseModel(
        num_classes=num_classes, trunk_frozen=config.trunk_frozen,
        num_glimpses=config.num_glimpses, num_resolutions=config.num_resolutions,
        start_size=config.start_size, location_std=config.location_std,
        hidden_units=config.hidden_units, attention_units=config.attention_units, dtype=dtype,
        **trunk)

  def objective(self, config, model, image_shape, teacher=None):
    if config.transfer.method != 'none':
      raise ConfigError(f'config.transfer.method={config.transfer.method!r} does not apply to '
                        f'{config.model.name}; set it to none.')
    if config.model.name == 'glimpse_trunk':
      return HeadsCrossEntropy()
    return glimpse_family.HybridLoss(config.model.reinforce_weight, config.model.baseline_weight)

  def frozen_parameters(self, params):
    config = self.model_config
    if config.name == 'glimpse_trunk' or not config.trunk_frozen:
      return None
    return {module: jax.tree.map(lambda _, frozen=module == 'trunk': frozen, tree)
            for module, tree in params.items()}

  def pretrained_variables(self, mesh):
    config = self.model_config
    if config.name == 'glimpse_trunk' or not config.trunk_workdir:
      return None
    run = runs.load_run(config.trunk_workdir, mesh=mesh)
    trained = run.config.model
    if trained.name != 'glimpse_trunk' or _trunk_settings(trained) != _trunk_settings(config):
      raise CheckpointError(
          f'config.model.trunk_workdir={config.trunk_workdir} holds a {trained.name} run with '
          f'the trunk {_trunk_settings(trained)}, not a glimpse_trunk run with the trunk '
          f'{_trunk_settings(config)} of this config; pretrain one with '
          'configs/stanford_dogs_glimpse_trunk.py.')
    return {collection: {'trunk': run.variables[collection]['trunk']}
            for collection in ('params', 'batch_stats') if collection in run.variables}

  @functools.cached_property
  def eval_metrics(self):
    if self.model_config.name == 'glimpse_trunk':
      return families.ClassificationMetrics
    return glimpse_family.SampledClassificationMetrics

  def eval_outputs(self, predict, images, batch, rng):
    if self.model_config.name == 'glimpse_trunk':
      return super().eval_outputs(predict, images, batch, rng)
    return glimpse_family.sampled_classification_outputs(
        predict, images, batch['label'], rng, self.model_config.eval_samples)[0]

  def figure_arrays(self, aux):
    return (aux['locations'],) if 'locations' in aux else ()

  def draw_figure(self, images, arrays, teacher_arrays=()):
    if not arrays:
      return None
    config = self.model_config
    sides = fine_grained.glimpse_sides(images.shape[1], config.start_size,
                                       config.num_resolutions)
    return summaries.glimpse_grid(images, arrays[0], sides)
