"""What the train step minimises: a task loss plus, for attention transfer, terms from a teacher.

Fields of `config.transfer` (Zagoruyko & Komodakis, "Paying More Attention to Attention"):
  method:
    'none': cross-entropy only (every LTPA config);
    'at': cross-entropy + activation-based AT at every transfer point (paper eq. 2);
    'kd': Hinton knowledge distillation (temperature T, weight α);
    'at_kd': KD + activation AT, β decaying over training as set by `beta_schedule`;
    'grad_at': cross-entropy + gradient-based AT, (β/2)·‖∂ℓ_s/∂x − ∂ℓ_t/∂x‖₂ (paper §3.2);
    'flip_sym': cross-entropy + the flip-symmetry regulariser (no teacher).
  at_form: 'code' (β · mean squared difference of the normalised maps, β = 1000, the released
    code) or 'paper' ((β/2) · L2 norm of their difference).
  beta: weight of the transfer term; beta_schedule: 'constant', 'linear' or 'cosine' decay.
  p: exponent of the activation attention map Σ_c |A_c|^p.
  temperature, alpha: of KD.
Methods that need a teacher read it from `config.teacher.workdir` (lpta.teacher).

Input gradients (grad_at, flip_sym) are taken in inference mode, with BatchNorm running
statistics, so that each row is the gradient of that example's own loss, as for the teacher.
"""

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import ml_collections
import optax

from lpta import losses
from lpta.errors import ConfigError

METHODS = ('none', 'at', 'kd', 'at_kd', 'grad_at', 'flip_sym')
TEACHER_METHODS = ('at', 'kd', 'at_kd', 'grad_at')
ACTIVATION_METHODS = ('at', 'at_kd')
DISTILLATION_METHODS = ('kd', 'at_kd')


def cross_entropy(logits, labels):
  """Per-example softmax cross-entropy: [B, K], [B] -> [B]."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for a bad `config.transfer` or a teacher that the method does not use."""
  transfer, teacher_workdir = config.transfer, config.teacher.workdir
  if transfer.method not in METHODS:
    raise ConfigError(f'config.transfer.method={transfer.method!r} is not a method; use one of '
                      f'{", ".join(METHODS)}.')
  if transfer.method in TEACHER_METHODS and not teacher_workdir:
    raise ConfigError(f'config.transfer.method={transfer.method!r} needs a teacher: set '
                      '--config.teacher.workdir to the workdir of a trained lpta run.')
  if transfer.method not in TEACHER_METHODS and teacher_workdir:
    raise ConfigError(f'config.teacher.workdir is set but config.transfer.method='
                      f'{transfer.method!r} uses no teacher; use at, kd, at_kd or grad_at, or '
                      'unset the teacher.')
  if transfer.at_form not in losses.AT_FORMS:
    raise ConfigError(f'config.transfer.at_form={transfer.at_form!r} is not valid; use one of '
                      f'{", ".join(losses.AT_FORMS)}.')
  if transfer.beta_schedule not in losses.BETA_SCHEDULES:
    raise ConfigError(f'config.transfer.beta_schedule={transfer.beta_schedule!r} is not valid; '
                      f'use one of {", ".join(losses.BETA_SCHEDULES)}.')
  if transfer.beta < 0 or transfer.temperature <= 0 or not 0 <= transfer.alpha <= 1:
    raise ConfigError('config.transfer needs beta >= 0, temperature > 0 and alpha in [0, 1].')


@dataclasses.dataclass(frozen=True)
class Objective:
  """The loss of one run. `teacher_model` is None unless the method uses a teacher."""
  transfer: ml_collections.ConfigDict
  num_train_steps: int
  teacher_model: nn.Module | None = None

  def term_names(self, num_transfer_points: int) -> tuple[str, ...]:
    """Names of the scalars `__call__` returns besides the total loss."""
    if self.transfer.method == 'none':
      return ()
    points = (tuple(f'at_loss_{point}' for point in range(1, num_transfer_points + 1))
              if self.transfer.method in ACTIVATION_METHODS else ())
    return ('task_loss', 'transfer_loss') + points

  def teacher_targets(self, teacher_variables, images, labels) -> dict[str, Any]:
    """The teacher's outputs on `images` in inference mode, without gradient ({} if none)."""
    if self.teacher_model is None:
      return {}
    logits, aux = self.teacher_model.apply(teacher_variables, images, train=False)
    targets = {'logits': logits, 'group_activations': aux['group_activations']}
    if self.transfer.method == 'grad_at':
      targets['input_gradients'] = losses.input_gradients(
          lambda x: cross_entropy(self.teacher_model.apply(teacher_variables, x, train=False)[0],
                                  labels), images)
    return jax.lax.stop_gradient(targets)

  def __call__(self, inference_loss: Callable, logits, aux, images, labels, targets, step):
    """(total loss, {term name: scalar}) for one batch.

    inference_loss: images -> per-example loss [B] of the student in inference mode (for the
      input-gradient methods). logits, aux: the student's train-mode outputs.
    """
    method = self.transfer.method
    if method in DISTILLATION_METHODS:
      task_loss = losses.distillation_loss(logits, targets['logits'], labels,
                                           self.transfer.temperature, self.transfer.alpha)
    else:
      task_loss = cross_entropy(logits, labels).mean()
    if method == 'none':
      return task_loss, {}
    beta = losses.decayed_beta(self.transfer.beta, step, self.num_train_steps,
                               self.transfer.beta_schedule)
    terms = {}
    if method in ACTIVATION_METHODS:
      transfer_loss, per_point = losses.attention_transfer_loss(
          aux['group_activations'], targets['group_activations'], self.transfer.at_form, beta,
          self.transfer.p)
      terms = {f'at_loss_{point}': value for point, value in enumerate(per_point, start=1)}
    elif method == 'grad_at':
      transfer_loss = losses.gradient_attention_transfer_loss(
          losses.input_gradients(inference_loss, images), targets['input_gradients'], beta)
    elif method == 'flip_sym':
      transfer_loss = losses.flip_symmetry_loss(inference_loss, images, beta)
    else:
      transfer_loss = 0. * task_loss
    return task_loss + transfer_loss, {'task_loss': task_loss, 'transfer_loss': transfer_loss,
                                       **terms}
