"""Recurrent glimpse models: the Recurrent Attention Model (Mnih et al., NIPS 2014).

`config.model.name` 'ram' (lpta.models.ram.RecurrentAttentionModel); its fields are FIELDS
below.

The objective is RAM's hybrid loss (`HybridLoss`); `config.transfer.method` must stay 'none'.
Evaluation reports the accuracy with the policy's mean locations (`accuracy`; it ranks the best
checkpoints; a random first location is drawn from the evaluation key, the same at every
evaluation), the accuracy of S sampled trajectories (`sampled_accuracy`), and,
on data with object boxes (which RAM needs), the mean distance in pixels between the object's
centre and the centre of glimpse t (`glimpse_distance_t`, t = 1 … T), and two references: the
image centre (`centre_distance`) and a uniformly random location (`random_location_distance`).
The figure draws every glimpse's patches, one colour per step.
"""

import functools

from clu import metrics
import jax
import jax.numpy as jnp

from lpta import config_fields as cf
from lpta import data
from lpta import families
from lpta import losses
from lpta import objectives
from lpta import optimizers
from lpta import summaries
from lpta.errors import ConfigError
from lpta.models import glimpse
from lpta.models import ram

# The fields every glimpse family has: of its policy, and of the hybrid loss and its evaluation.
POLICY_FIELDS = (
    cf.Field('num_glimpses', 6, 'T, glimpses per image (RAM: 4, 6 or 8).', cf.POSITIVE_INTEGER),
    cf.Field('location_std', 0.11, 'σ of the Gaussian location policy, in half image sides.',
             cf.POSITIVE_NUMBER, hint='(RAM: 0.11 to 0.17)'),
)
HYBRID_LOSS_FIELDS = (
    cf.Field('reinforce_weight', 1e-3, 'Weight of the REINFORCE term, averaged over the batch. '
             "With policy_gradient 'policy' it reaches the location network only, so with SGD it "
             "scales the policy's learning rate, and with Adam, which normalises gradients, it "
             'has almost no effect.', cf.number(0)),
    cf.Field('baseline_weight', 1., 'Weight of the log loss of the baseline b_t = sigmoid(w·h_t '
             '+ c), a logistic regression of the reward.', cf.number(0)),
    cf.Field('eval_samples', 7, 'S, the sampled trajectories whose class probabilities are '
             'averaged for sampled_accuracy.', cf.POSITIVE_INTEGER),
)
# Read by the train step (model_inputs), not a module attribute.
UNIFORM_WARMUP = cf.Field(
    'uniform_warmup', 0., "The share of the training steps, from the start, whose glimpses are "
    "uniformly random instead of the policy's (its REINFORCE term is then zero): the classifier "
    'learns to read glimpses anywhere before the policy steers them; 0: none.',
    cf.number(0, below=1), added=0.)
FIELDS = {'ram': (
    *POLICY_FIELDS,
    cf.Field('patch_size', 12, 'Side of the smallest patch, and of every patch after pooling.',
             cf.POSITIVE_INTEGER),
    cf.Field('num_scales', 3, 'Patches per glimpse (RAM on 60×60: 3, of 12, 24 and 48 pixels).',
             cf.POSITIVE_INTEGER),
    cf.Field('scale_factor', 2, 'The ratio of successive patch sides.', cf.POSITIVE_INTEGER),
    cf.Field('glimpse_units', 128, 'Width of h_g.', cf.POSITIVE_INTEGER),
    cf.Field('location_units', 128, 'Width of h_l.', cf.POSITIVE_INTEGER),
    cf.Field('glimpse_output_units', 256, 'Width of g_t.', cf.POSITIVE_INTEGER),
    cf.Field('core', 'rnn', "'rnn' (RAM's ReLU RNN) or 'lstm'.", cf.one_of(ram.CORES)),
    cf.Field('hidden_units', 256, 'Width of the core.', cf.POSITIVE_INTEGER),
    cf.Field('initial_location', 'learned', "Where glimpse 1 looks: 'learned' (the policy at the "
             "all-zero state h_0, as RAM's recurrent attention does, so learned by REINFORCE "
             "like every other location), 'centre', or 'random' (uniform).",
             cf.one_of(ram.INITIAL_LOCATIONS)),
    cf.Field('policy', 'learned', "'learned'; the controls 'random' (uniform locations, the "
             '"random glimpses" baseline), \'centre\' (the centre, ± σ when sampling) and '
             "'oracle' (the centre of the object's box, ± σ when sampling: the upper bound of "
             'where to look; it needs boxes, so it trains and evaluates but does not predict).',
             cf.one_of(ram.POLICIES)),
    cf.Field('location_hidden_units', 0, "0: RAM's linear location network; > 0: the width of "
             'its ReLU hidden layer.', cf.integer(0)),
    cf.Field('location_init', 'default', "The last layer of the location network: 'default' "
             "(Flax's initialisation) or 'zero' (the untrained policy looks at the centre).",
             cf.one_of(ram.LOCATION_INITS), added='default'),
    cf.Field('policy_gradient', 'policy', "What REINFORCE trains: 'policy' (the location network "
             "alone: it reads the state through a stop-gradient) or 'core' (the core and the "
             "glimpse network too, the paper's Eq. 2).", cf.one_of(ram.POLICY_GRADIENTS),
             added='policy'),
    cf.Field('padding', 'mean', "Pixels off the image: 'mean' (zero in normalised units, the "
             "data mean) or 'black' (each image's darkest value).", cf.one_of(ram.PADDINGS),
             added='mean'),
    UNIFORM_WARMUP,
    *HYBRID_LOSS_FIELDS,
    cf.Field('train_trajectories', 1, 'M, trajectories per training image. With M = 1 REINFORCE '
             "subtracts the learned baseline; with M >= 2 each trajectory's baseline is the mean "
             "reward of the image's other trajectories (no learned baseline) and every "
             "trajectory's cross-entropy trains the classifier; a step costs M times as much.",
             cf.POSITIVE_INTEGER, added=1),
)}




def module_fields(fields) -> tuple[str, ...]:
  """The names of `fields` that are attributes of the module: all but HYBRID_LOSS_FIELDS and
  UNIFORM_WARMUP."""
  loop_fields = {field.name for field in (*HYBRID_LOSS_FIELDS, UNIFORM_WARMUP)}
  return tuple(field.name for field in fields if field.name not in loop_fields)


class HybridLoss(objectives.Objective):
  """RAM's hybrid loss (Mnih et al. 2014): cross-entropy + w_r·REINFORCE + w_b·baseline log loss.

  Every term is averaged over the M trajectories of each image (aux 'trajectory_logits' [B, M,
  K]). The reward is R = 1 when a trajectory's classification is right at its end, else 0. The
  cross-entropy trains classifier, core and glimpse network; the REINFORCE term (averaged over
  the batch, lpta.losses.reinforce_loss) the location policy (and the core and glimpse network
  with the model's policy_gradient 'core'), with R minus a baseline: for
  M = 1 the learned b_t = sigmoid(baseline logit), which the baseline term (its log loss against
  R) trains alone, and for M ≥ 2 the mean reward of the image's other trajectories
  (lpta.models.ram puts the stop-gradients there). Logs each term and the mean reward.
  """
  method = 'hybrid'

  def __init__(self, reinforce_weight: float, baseline_weight: float):
    super().__init__(transfer=None)
    self.reinforce_weight = reinforce_weight
    self.baseline_weight = baseline_weight

  @property
  def term_names(self):
    return ('classification_loss', 'reinforce_loss', 'baseline_loss', 'reward')

  def __call__(self, student, targets):
    aux, labels = student.aux, student.labels
    logits = aux['trajectory_logits']  # [B, M, K]
    rewards = jax.lax.stop_gradient(
        (jnp.argmax(logits, axis=-1) == labels[:, None]).astype(jnp.float32))
    if logits.shape[1] == 1:
      baselines = jax.nn.sigmoid(aux['baseline_logits'])
    else:
      baselines = losses.leave_one_out_baselines(rewards)[..., None]
    per_trajectory_labels = jnp.broadcast_to(labels[:, None], rewards.shape)
    terms = {
        'classification_loss': objectives.cross_entropy(logits, per_trajectory_labels).mean(),
        'reinforce_loss': losses.reinforce_loss(aux['log_probs'], rewards, baselines),
        'baseline_loss': losses.baseline_loss(aux['baseline_logits'], rewards),
        'reward': rewards.mean(),
    }
    loss = (terms['classification_loss'] + self.reinforce_weight * terms['reinforce_loss']
            + self.baseline_weight * terms['baseline_loss'])
    return loss, terms


# ClassificationMetrics and the accuracy of S sampled trajectories.
SAMPLED_CLASSIFICATION_METRICS = {
    'loss': metrics.Average.from_output('loss'), 'accuracy': metrics.Accuracy,
    'top5_accuracy': metrics.Average.from_output('top5_correct'),
    'sampled_accuracy': metrics.Average.from_output('sampled_correct')}
SampledClassificationMetrics = metrics.Collection.create(**SAMPLED_CLASSIFICATION_METRICS)


def sampled_classification_outputs(predict, images, labels, rng, samples: int):
  """(per-example values of SampledClassificationMetrics, aux of the mean-location forward).

  The accuracy is that of the policy's mean locations; `sampled_correct` that of the class
  probabilities averaged over `samples` trajectories drawn with keys fold_in(rng, s).
  """
  logits, aux = predict(images, rng)
  outputs = families.classification_outputs(logits, labels)
  probabilities = sum(
      jax.nn.softmax(predict(images, jax.random.fold_in(rng, sample), sample_locations=True)[0])
      for sample in range(samples)) / samples
  outputs['sampled_correct'] = (jnp.argmax(probabilities, -1) == labels).astype(jnp.float32)
  return outputs, aux


# What tells a healthy policy from a dead or saturated one, averaged over the evaluated images:
#   saturated_means: the share of the policy's mean coordinates with |μ| > 0.99 (tanh saturated:
#     its gradient vanishes there, so the policy stays);
#   location_spread: the mean distance in pixels of glimpses 2 … T from the batch's mean glimpse
#     of the same step (0: the policy looks at one place whatever the image);
#   location_kernel_norm: ‖W_μ‖ (its change over the run is in the logs).
POLICY_HEALTH = ('saturated_means', 'location_spread', 'location_kernel_norm')


def policy_health(aux, glimpse_centres, mask) -> dict[str, jax.Array]:
  """Per-example values of POLICY_HEALTH from the model's aux, glimpse centres [B, T, 2] in
  pixels and the padding mask [B] (padded rows are left out of the batch mean)."""
  means = aux['location_means']  # [B, C, 2]
  saturated = (jnp.mean(jnp.abs(means) > 0.99, axis=(1, 2)) if means.shape[1]
               else jnp.zeros(means.shape[:1]))
  weights = mask[:, None, None] / jnp.maximum(mask.sum(), 1)
  later = glimpse_centres[:, 1:]
  batch_mean = jnp.sum(later * weights, axis=0, keepdims=True)
  spread = (jnp.linalg.norm(later - batch_mean, axis=-1).mean(axis=1) if later.shape[1]
            else jnp.zeros(mask.shape))
  return {'saturated_means': saturated.astype(jnp.float32), 'location_spread': spread,
          'location_kernel_norm': aux['location_kernel_norm']}


def object_centres(boxes: jax.Array) -> jax.Array:
  """Centres [B, 2] (x, y) in pixels of boxes [B, 4] (top, left, bottom, right)."""
  boxes = boxes.astype(jnp.float32)
  return jnp.stack([(boxes[:, 1] + boxes[:, 3]) / 2, (boxes[:, 0] + boxes[:, 2]) / 2], axis=-1)


@families.register
class RecurrentGlimpseModels(families.Family):
  """RAM on images with object boxes."""
  name = 'glimpse'
  fields = FIELDS
  parameter_group_names = ('policy',)  # the location network (config.optimizer.groups.policy)
  rng_streams = ('location',)
  figure_arrays_are_maps = False  # glimpse locations

  @property
  def patch_sides(self) -> tuple[int, ...]:
    config = self.model_config
    return glimpse.patch_sides(config.patch_size, config.num_scales, config.scale_factor)

  def build(self, num_classes, dtype):
    return ram.RecurrentAttentionModel(num_classes=num_classes, dtype=dtype,
                                       **self.settings(module_fields(FIELDS['ram'])))

  def objective(self, config, model, image_shape, teacher=None):
    if config.transfer.method != 'none':
      raise ConfigError(f'config.transfer.method={config.transfer.method!r} does not apply to '
                        f'{config.model.name}, which trains with its hybrid loss; set it to none.')
    if not data.get(config.data).object_boxes:
      boxed = ', '.join(name for name, source in data.REGISTRY.items() if source.object_boxes)
      raise ConfigError(f'{config.model.name} reports glimpse-to-object distances and needs '
                        f'object boxes, which {config.data.name} lacks; use {boxed}.')
    return HybridLoss(self.model_config.reinforce_weight, self.model_config.baseline_weight)

  @functools.cached_property
  def eval_metrics(self):
    averaged = [f'glimpse_distance_{step}'
                for step in range(1, self.model_config.num_glimpses + 1)]
    averaged += ['centre_distance', 'random_location_distance', *POLICY_HEALTH]
    return metrics.Collection.create(
        **SAMPLED_CLASSIFICATION_METRICS,
        **{name: metrics.Average.from_output(name) for name in averaged})

  def model_inputs(self, batch, train_progress=None):
    inputs = {}
    if self.model_config.policy == 'oracle':
      height, width = batch['image'].shape[1:3]
      inputs['object_locations'] = glimpse.pixels_to_location(object_centres(batch['box']),
                                                              height, width)
    if train_progress is not None and self.model_config.uniform_warmup:
      inputs['uniform_glimpses'] = train_progress < self.model_config.uniform_warmup
    return inputs

  def eval_outputs(self, predict, images, batch, rng):
    samples = self.model_config.eval_samples
    outputs, aux = sampled_classification_outputs(predict, images, batch['label'], rng, samples)
    height, width = images.shape[1:3]
    centres = object_centres(batch['box'])
    glimpse_centres = glimpse.location_to_pixels(aux['locations'], height, width)
    distances = jnp.linalg.norm(glimpse_centres - centres[:, None], axis=-1)
    for step in range(distances.shape[1]):
      outputs[f'glimpse_distance_{step + 1}'] = distances[:, step]
    outputs['centre_distance'] = jnp.linalg.norm(
        centres - jnp.array([width, height], jnp.float32) / 2, axis=-1)
    random_locations = jax.random.uniform(jax.random.fold_in(rng, samples), centres.shape,
                                          minval=-1, maxval=1)
    outputs['random_location_distance'] = jnp.linalg.norm(
        glimpse.location_to_pixels(random_locations, height, width) - centres, axis=-1)
    mask = batch.get('mask', jnp.ones(centres.shape[:1]))  # 0 for padding rows
    return {**outputs, **policy_health(aux, glimpse_centres, mask)}

  def parameter_groups(self, params):
    return {module: jax.tree.map(lambda _, label='policy' if module == 'location' else
                                 optimizers.DEFAULT: label, tree)
            for module, tree in params.items()}

  def figure_arrays(self, aux):
    return (aux['locations'],)

  def draw_figure(self, images, arrays, teacher_arrays=()):
    del teacher_arrays
    return summaries.glimpse_grid(images, arrays[0], self.patch_sides)
