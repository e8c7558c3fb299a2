"""The fine-grained glimpse model (Sermanet, Frome & Real 2014, as reworked by the
Visual-Attention-Pytorch repository) and the pretraining of its trunk: two families, one model
each (lpta.models.fine_grained).

'glimpse_trunk' pretrains the trunk with a head per combination of the three resolutions, on the
sum of the heads' cross-entropies; its accuracy is the three-resolution head's.
'fine_grained_glimpse' is the glimpse model. It starts from a pretrained trunk through
fine-tuning, `config.init_from.workdir` = the 'glimpse_trunk' run (lpta.fine_tuning loads the
trunk, whose paths and shapes the two models share, and refuses a trunk of other shapes), trains
on RAM's hybrid loss (lpta.families.glimpse.HybridLoss) and reports `accuracy` (mean locations)
and `sampled_accuracy`; the figure draws the glimpses. Their fields are in FIELDS.
"""

import jax

from lpta import config_fields as cf
from lpta import families
from lpta import objectives
from lpta import optimizers
from lpta import summaries
from lpta.errors import ConfigError
from lpta.families import glimpse as glimpse_family
from lpta.models import fine_grained

_TRUNK_FIELDS = (
    cf.Field('trunk', 'resnet50', "'resnet50' (with the repository's 5×5 stride-1 stem) or "
             "'small_cnn'.", cf.one_of(fine_grained.TRUNKS)),
    cf.Field('small_trunk_widths', (16, 32, 64), "'small_cnn' only: the widths of its 3×3 "
             'stride-2 convolutions.', cf.tuple_of(cf.POSITIVE_INTEGER, 'positive integers')),
    cf.Field('glimpse_size', 96, 'g: the side every crop is resized to before the trunk (a '
             'multiple of twice the trunk\'s reduction, so that its map splits into quadrants).',
             cf.POSITIVE_INTEGER),
)
FIELDS = {
    'glimpse_trunk': _TRUNK_FIELDS + (
        cf.Field('head_units', 1024, 'Width of each head\'s hidden layer.', cf.POSITIVE_INTEGER),),
    'fine_grained_glimpse': _TRUNK_FIELDS + (
        cf.Field('trunk_frozen', True, 'No update of the trunk, and inference-mode BatchNorm.',
                 cf.BOOLEAN),
        *cf.with_defaults(glimpse_family.POLICY_FIELDS, num_glimpses=1, location_std=0.2),
        cf.Field('num_resolutions', 2, 'k: windows per glimpse, of sides (S/4)·start_size·2^j.',
                 cf.POSITIVE_INTEGER),
        cf.Field('start_size', 2, 'See num_resolutions (2 on 224×224: sides 112 and 224).',
                 cf.POSITIVE_INTEGER),
        cf.Field('hidden_units', 2048, 'Width of the LSTM.', cf.POSITIVE_INTEGER),
        cf.Field('attention_units', 1024, 'Width of the additive attention over the regions.',
                 cf.POSITIVE_INTEGER),
        *cf.with_defaults(glimpse_family.HYBRID_LOSS_FIELDS, reinforce_weight=1.)),
}


class HeadsCrossEntropy(objectives.Objective):
  """The trunk pretraining loss: the sum of the heads' mean cross-entropies (the repository's
  pretrain.py)."""
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


def _refuse_transfer(config) -> None:
  if config.transfer.method != 'none':
    raise ConfigError(f'config.transfer.method={config.transfer.method!r} does not apply to '
                      f'{config.model.name}; set it to none.')


class _Trunk(families.Family):
  """What both families check of the trunk: that a glimpse's feature map splits into four
  quadrants."""

  def validate(self) -> None:
    config = self.model_config
    reduction = 16 if config.trunk == 'resnet50' else 2**len(config.small_trunk_widths)
    if config.glimpse_size % (2 * reduction):
      raise ConfigError(f'config.model.glimpse_size={config.glimpse_size} must be a multiple of '
                        f'{2 * reduction}, so that the {config.trunk} trunk\'s feature map '
                        'splits into four quadrants (96 for resnet50).')


@families.register
class GlimpseTrunkPretraining(_Trunk):
  """The trunk's pretraining network (lpta.models.fine_grained.TrunkPretraining)."""
  name = 'glimpse_trunk'
  fields = {'glimpse_trunk': FIELDS['glimpse_trunk']}

  def build(self, num_classes, dtype):
    return fine_grained.TrunkPretraining(num_classes=num_classes, dtype=dtype, **self.settings())

  def objective(self, config, model, image_shape, teacher=None):
    _refuse_transfer(config)
    return HeadsCrossEntropy()


@families.register
class FineGrainedGlimpse(_Trunk):
  """The glimpse model on a (pretrained, frozen) trunk
  (lpta.models.fine_grained.FineGrainedGlimpseModel)."""
  name = 'fine_grained_glimpse'
  fields = {'fine_grained_glimpse': FIELDS['fine_grained_glimpse']}
  rng_streams = ('location',)
  eval_metrics = glimpse_family.SampledClassificationMetrics
  figure_arrays_are_maps = False  # glimpse locations

  def build(self, num_classes, dtype):
    module_fields = glimpse_family.module_fields(FIELDS['fine_grained_glimpse'])
    return fine_grained.FineGrainedGlimpseModel(num_classes=num_classes, dtype=dtype,
                                                **self.settings(module_fields))

  def objective(self, config, model, image_shape, teacher=None):
    _refuse_transfer(config)
    return glimpse_family.HybridLoss(config.model.reinforce_weight, config.model.baseline_weight)

  def parameter_groups(self, params):
    if not self.model_config.trunk_frozen:
      return None
    return {module: jax.tree.map(lambda _, label=optimizers.FROZEN if module == 'trunk' else
                                 optimizers.DEFAULT: label, tree)
            for module, tree in params.items()}

  def eval_outputs(self, predict, images, batch, rng):
    return glimpse_family.sampled_classification_outputs(
        predict, images, batch['label'], rng, self.model_config.eval_samples)[0]

  def figure_arrays(self, aux):
    return (aux['locations'],)

  def draw_figure(self, images, arrays, teacher_arrays=()):
    del teacher_arrays
    config = self.model_config
    sides = fine_grained.glimpse_sides(images.shape[1], config.start_size,
                                       config.num_resolutions)
    return summaries.glimpse_grid(images, arrays[0], sides)
