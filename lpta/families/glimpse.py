"""Recurrent glimpse models: the Recurrent Attention Model (Mnih et al., NIPS 2014).

`config.model` fields of 'ram' (lpta.models.ram.RecurrentAttentionModel):
  num_glimpses: T, glimpses per image (RAM: 4, 6 or 8).
  patch_size, num_scales, scale_factor: the sensor's smallest patch side, number of patches and
    the ratio of their sides (RAM's 60×60 tasks: 12, 3, 2).
  location_std: σ of the Gaussian location policy, in units of the half image side.
  glimpse_units, location_units, glimpse_output_units: widths of h_g, h_l and g_t (128, 128, 256).
  core: 'rnn' (RAM's ReLU RNN) or 'lstm'; hidden_units: its width (256).
  initial_location: where the first glimpse looks: 'learned' (chosen by the policy from the
    all-zero state h_0, so a starting point learned by REINFORCE like every other location),
    'centre', or 'random' (uniform).
  policy: 'learned', or 'random' for uniformly random locations (the "random glimpses" baseline).
  location_hidden_units: 0 for RAM's linear location network, else the width of its ReLU hidden
    layer.
  reinforce_weight, baseline_weight: weights of the REINFORCE term and of the baseline's log
    loss (the baseline b_t = sigmoid(w·h_t + c) estimates the probability of a right answer).
    Each term reaches its own parameters only (the policy, the baseline), so with SGD a weight
    scales that part's learning rate, and with Adam, which normalises gradients, it has almost no
    effect.
  eval_samples: S, the sampled trajectories whose class probabilities are averaged for
    `sampled_accuracy`.
  train_trajectories: M, the trajectories sampled per training image (default 1). With M = 1
    REINFORCE subtracts the learned baseline; with M ≥ 2 each trajectory's baseline is the mean
    reward of the image's other trajectories (no learned baseline), and every trajectory's
    cross-entropy trains the classifier. Each step then costs M times as much.

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

from lpta import data
from lpta import families
from lpta import losses
from lpta import objectives
from lpta import summaries
from lpta.errors import ConfigError
from lpta.models import glimpse
from lpta.models import ram

_FIELDS = ('num_glimpses', 'patch_size', 'num_scales', 'scale_factor', 'location_std',
           'glimpse_units', 'location_units', 'glimpse_output_units', 'core', 'hidden_units',
           'initial_location', 'policy', 'location_hidden_units', 'reinforce_weight',
           'baseline_weight', 'eval_samples')
_POSITIVE_INTEGERS = ('num_glimpses', 'patch_size', 'num_scales', 'scale_factor',
                      'glimpse_units', 'location_units', 'glimpse_output_units', 'hidden_units',
                      'eval_samples', 'train_trajectories')
_CHOICES = {'core': ram.CORES, 'initial_location': ram.INITIAL_LOCATIONS,
            'policy': ram.POLICIES}


class HybridLoss(objectives.Objective):
  """RAM's hybrid loss (§2.2): cross-entropy + w_r · REINFORCE + w_b · baseline regression.

  Every term is averaged over the M trajectories of each image (aux 'trajectory_logits' [B, M,
  K]). The reward is R = 1 when a trajectory's classification is right at its end, else 0. The
  cross-entropy trains classifier, core and glimpse network; the REINFORCE term (averaged over
  the batch, lpta.losses.reinforce_loss) only the location policy, with R minus a baseline: for
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


def object_centres(boxes: jax.Array) -> jax.Array:
  """Centres [B, 2] (x, y) in pixels of boxes [B, 4] (top, left, bottom, right)."""
  boxes = boxes.astype(jnp.float32)
  return jnp.stack([(boxes[:, 1] + boxes[:, 3]) / 2, (boxes[:, 0] + boxes[:, 2]) / 2], axis=-1)


@families.register
class RecurrentGlimpseModels(families.Family):
  """RAM on images with object boxes."""
  name = 'glimpse'
  model_names = ('ram',)
  rng_streams = ('location',)
  figure_arrays_are_maps = False  # glimpse locations

  def validate(self) -> None:
    config = self.model_config
    families.require_fields(config, _FIELDS)
    values = {**config, **families.added_fields(config, ('train_trajectories',))}
    for field in (*_POSITIVE_INTEGERS, 'location_hidden_units'):
      value, minimum = values[field], 0 if field == 'location_hidden_units' else 1
      if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f'config.model.{field}={value!r} must be an integer >= {minimum}.')
    for field, choices in _CHOICES.items():
      if config[field] not in choices:
        raise ConfigError(f'config.model.{field}={config[field]!r} is not valid; use one of '
                          f'{", ".join(choices)}.')
    for field, minimum in (('location_std', 'a positive number (RAM: 0.11 to 0.17)'),
                           ('reinforce_weight', 'a number >= 0'),
                           ('baseline_weight', 'a number >= 0')):
      value = config[field]
      if (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
          or (field == 'location_std' and value == 0)):
        raise ConfigError(f'config.model.{field}={value!r} must be {minimum}.')

  @property
  def patch_sides(self) -> tuple[int, ...]:
    config = self.model_config
    return glimpse.patch_sides(config.patch_size, config.num_scales, config.scale_factor)

  def build(self, num_classes, dtype):
    config = self.model_config
    return ram.RecurrentAttentionModel(
        num_classes=num_classes, num_glimpses=config.num_glimpses, patch_size=config.patch_size,
        num_scales=config.num_scales, scale_factor=config.scale_factor,
        location_std=config.location_std, glimpse_units=config.glimpse_units,
        location_units=config.location_units,
        glimpse_output_units=config.glimpse_output_units, core=config.core,
        hidden_units=config.hidden_units, initial_location=config.initial_location,
        policy=config.policy, location_hidden_units=config.location_hidden_units,
        **families.added_fields(config, ('train_trajectories',)), dtype=dtype)

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
    distances = [f'glimpse_distance_{step}'
                 for step in range(1, self.model_config.num_glimpses + 1)]
    distances += ['centre_distance', 'random_location_distance']
    return metrics.Collection.create(
        **SAMPLED_CLASSIFICATION_METRICS,
        **{name: metrics.Average.from_output(name) for name in distances})

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
    return outputs

  def figure_arrays(self, aux):
    return (aux['locations'],)

  def draw_figure(self, images, arrays, teacher_arrays=()):
    del teacher_arrays
    return summaries.glimpse_grid(images, arrays[0], self.patch_sides)
