"""What the train step minimises: one registered class per `config.transfer.method`.

`config.transfer.method` (Zagoruyko & Komodakis, "Paying More Attention to Attention"):
  'none': cross-entropy only (every LTPA config);
  'at': cross-entropy + activation-based AT at every transfer point (paper eq. 2);
  'kd': Hinton knowledge distillation (temperature T, weight α);
  'at_kd': KD + activation AT, β decaying over training as set by `beta_schedule`;
  'grad_at': cross-entropy + gradient-based AT, (β/2)·‖∂ℓ_s/∂x − ∂ℓ_t/∂x‖₂ (paper §3.2);
  'flip_sym': cross-entropy + the flip-symmetry regulariser (no teacher).
The other fields of `config.transfer` and `config.teacher` are declared in TRANSFER_FIELDS and
TEACHER_FIELDS below. Methods that need a teacher read it from `config.teacher.workdir`; it is loaded with
lpta.runs.load_run, runs in inference mode on the same augmented images as the student, each
network normalising them with its own statistics, and receives no gradient.

Input gradients (grad_at, flip_sym) are taken with respect to the image scaled to [0, 1], before
each network's own normalisation, so student and teacher gradients are comparable whatever their
normalisation, and in inference mode (BatchNorm running statistics), so that each row is the
gradient of that example's own loss.
"""

from collections.abc import Callable
import dataclasses
from typing import Any, ClassVar

import jax
import ml_collections
import optax

from lpta import config_fields as cf
from lpta import losses
from lpta.errors import ConfigError


def cross_entropy(logits, labels):
  """Per-example softmax cross-entropy: [B, K], [B] -> [B]."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


@dataclasses.dataclass(frozen=True)
class Student:
  """What an objective sees of the student on one batch.

  logits: [B, K], train mode. aux: the model's aux dict, train mode.
  transfer_points: the family's transfer points of `aux` ([B, h_j, w_j, C_j] each).
  pixels: float32 [B, H, W, C], the augmented images scaled to [0, 1].
  labels: int32 [B]. step: the step being taken (0 for the first) of `num_train_steps`.
  inference_loss: pixels -> per-example cross-entropy [B] of the student in inference mode.
  """
  logits: jax.Array
  aux: dict[str, Any]
  transfer_points: tuple[jax.Array, ...]
  pixels: jax.Array
  labels: jax.Array
  step: jax.Array
  num_train_steps: int
  inference_loss: Callable[[jax.Array], jax.Array]


class Objective:
  """The loss of one run: `(loss, {term: scalar})` from the student's outputs and the teacher's.

  Subclasses set `method`, `needs_teacher` and `term_names` and implement `__call__`; those with a
  teacher compute its outputs in `teacher_targets`, which runs without gradient.
  """
  method: ClassVar[str]
  needs_teacher: ClassVar[bool] = False

  def __init__(self, transfer: ml_collections.ConfigDict,
               student_points: tuple[jax.ShapeDtypeStruct, ...] = (), teacher=None):
    """student_points: the student's transfer points as shapes; teacher: a lpta.runs.Run."""
    self.transfer = transfer
    self.num_points = len(student_points)
    self.teacher = teacher
    self.check(student_points)

  def check(self, student_points) -> None:
    """Raises ConfigError when the student or the teacher cannot be trained this way."""
    del student_points

  @property
  def term_names(self) -> tuple[str, ...]:
    """Names of the scalars returned besides the total loss (logged as train_<name>)."""
    return ()

  def teacher_targets(self, teacher_arrays, pixels, labels) -> Any:
    """What the teacher contributes on this batch; teacher_arrays: `Run.arrays` of the teacher."""
    del teacher_arrays, pixels, labels
    return {}

  def beta(self, student: Student):
    """β at the student's step (config.transfer.beta_schedule)."""
    return losses.decayed_beta(self.transfer.beta, student.step, student.num_train_steps,
                               self.transfer.beta_schedule)

  def __call__(self, student: Student, targets) -> tuple[jax.Array, dict[str, jax.Array]]:
    raise NotImplementedError


REGISTRY: dict[str, type[Objective]] = {}


def register(objective_class: type[Objective]) -> type[Objective]:
  REGISTRY[objective_class.method] = objective_class
  return objective_class


@register
class CrossEntropy(Objective):
  """Mean cross-entropy with the labels."""
  method = 'none'

  def __call__(self, student, targets):
    return cross_entropy(student.logits, student.labels).mean(), {}


class _WithTeacher(Objective):
  """Objectives that read a frozen teacher."""
  needs_teacher = True

  def teacher_outputs(self, teacher_arrays, pixels):
    """The teacher's (logits, aux) on `pixels` in inference mode."""
    return self.teacher.apply(teacher_arrays, pixels)


@register
class ActivationTransfer(_WithTeacher):
  """Cross-entropy + activation-based AT summed over the transfer points (paper eq. 2)."""
  method = 'at'

  def check(self, student_points):
    if self.teacher is None:  # the terms alone, e.g. on hand-made targets
      return
    teacher_points = self.teacher.abstract_transfer_points()
    for who, points, model_config in (('student', student_points, None),
                                      ('teacher', teacher_points, self.teacher.config.model)):
      if not points:
        name = f' ({model_config.name})' if model_config else ''
        raise ConfigError(
            f'the {who}{name} has no transfer points for config.transfer.method='
            f'{self.method!r}; use a wrn or resnet {who}, or method kd or grad_at.')
    losses.check_matching_maps(student_points, teacher_points)

  @property
  def term_names(self):
    return (('task_loss', 'transfer_loss')
            + tuple(f'at_loss_{point}' for point in range(1, self.num_points + 1)))

  def teacher_targets(self, teacher_arrays, pixels, labels):
    _, aux = self.teacher_outputs(teacher_arrays, pixels)
    return {'transfer_points': self.teacher.family.transfer_points(aux)}

  def task_terms(self, student, targets):
    return {'task_loss': cross_entropy(student.logits, student.labels).mean()}

  def __call__(self, student, targets):
    terms = self.task_terms(student, targets)
    transfer_loss, per_point = losses.attention_transfer_loss(
        student.transfer_points, targets['transfer_points'], self.transfer.at_form,
        self.beta(student), self.transfer.p)
    terms.update(transfer_loss=transfer_loss,
                 **{f'at_loss_{point}': value for point, value in enumerate(per_point, start=1)})
    return sum(terms[name] for name in self.loss_terms), terms

  @property
  def loss_terms(self) -> tuple[str, ...]:
    """The terms whose sum is the loss (the per-point AT terms are parts of transfer_loss)."""
    return ('task_loss', 'transfer_loss')


@register
class Distillation(_WithTeacher):
  """Hinton KD: α·T²·KL(q_T ‖ p_S) + (1 − α)·CE; logs both terms."""
  method = 'kd'

  @property
  def term_names(self):
    return ('task_loss', 'distillation_loss')

  def teacher_targets(self, teacher_arrays, pixels, labels):
    logits, _ = self.teacher_outputs(teacher_arrays, pixels)
    return {'logits': logits}

  def task_terms(self, student, targets):
    alpha = self.transfer.alpha
    return {
        'task_loss': (1 - alpha) * cross_entropy(student.logits, student.labels).mean(),
        'distillation_loss': alpha * losses.distillation_divergence(
            student.logits, targets['logits'], self.transfer.temperature),
    }

  def __call__(self, student, targets):
    terms = self.task_terms(student, targets)
    return terms['task_loss'] + terms['distillation_loss'], terms


@register
class DistillationWithTransfer(ActivationTransfer):
  """KD + activation AT, with β decaying as `config.transfer.beta_schedule` says."""
  method = 'at_kd'
  task_terms = Distillation.task_terms

  @property
  def term_names(self):
    return ('distillation_loss',) + super().term_names

  @property
  def loss_terms(self):
    return ('task_loss', 'distillation_loss', 'transfer_loss')

  def teacher_targets(self, teacher_arrays, pixels, labels):
    logits, aux = self.teacher_outputs(teacher_arrays, pixels)
    return {'logits': logits, 'transfer_points': self.teacher.family.transfer_points(aux)}


@register
class GradientTransfer(_WithTeacher):
  """Cross-entropy + (β/2)·mean_b ‖∂ℓ_s/∂x − ∂ℓ_t/∂x‖₂ (paper §3.2), double backprop."""
  method = 'grad_at'

  @property
  def term_names(self):
    return ('task_loss', 'transfer_loss')

  def teacher_targets(self, teacher_arrays, pixels, labels):
    def teacher_loss(x):
      return cross_entropy(self.teacher_outputs(teacher_arrays, x)[0], labels)
    return {'input_gradients': losses.input_gradients(teacher_loss, pixels)}

  def __call__(self, student, targets):
    task_loss = cross_entropy(student.logits, student.labels).mean()
    transfer_loss = losses.gradient_attention_transfer_loss(
        losses.input_gradients(student.inference_loss, student.pixels),
        targets['input_gradients'], self.beta(student))
    return task_loss + transfer_loss, {'task_loss': task_loss, 'transfer_loss': transfer_loss}


@register
class FlipSymmetry(Objective):
  """Cross-entropy + (β/2)·mean_b ‖∂ℓ(x)/∂x − flip(∂ℓ(flip x)/∂x)‖₂; no teacher."""
  method = 'flip_sym'

  @property
  def term_names(self):
    return ('task_loss', 'transfer_loss')

  def __call__(self, student, targets):
    task_loss = cross_entropy(student.logits, student.labels).mean()
    transfer_loss = losses.flip_symmetry_loss(student.inference_loss, student.pixels,
                                              self.beta(student))
    return task_loss + transfer_loss, {'task_loss': task_loss, 'transfer_loss': transfer_loss}


def needs_teacher(transfer: ml_collections.ConfigDict) -> bool:
  return REGISTRY[transfer.method].needs_teacher


def create(transfer: ml_collections.ConfigDict,
           student_points: tuple[jax.ShapeDtypeStruct, ...] = (), teacher=None) -> Objective:
  """The objective `config.transfer.method` names (validated with `validate`)."""
  return REGISTRY[transfer.method](transfer, student_points, teacher)


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for a bad `config.transfer` or a teacher that the method does not use."""
  transfer = cf.validated(config.transfer, TRANSFER_FIELDS, 'config.transfer')
  teacher_workdir = cf.validated(config.teacher, TEACHER_FIELDS, 'config.teacher').workdir
  teacher_methods = ', '.join(name for name, cls in REGISTRY.items() if cls.needs_teacher)
  if needs_teacher(transfer) and not teacher_workdir:
    raise ConfigError(f'config.transfer.method={transfer.method!r} needs a teacher: set '
                      '--config.teacher.workdir to the workdir of a trained lpta run.')
  if not needs_teacher(transfer) and teacher_workdir:
    raise ConfigError(f'config.teacher.workdir is set but config.transfer.method='
                      f'{transfer.method!r} uses no teacher; use {teacher_methods}, or unset '
                      'the teacher.')


# The fields of config.transfer (the methods are those registered above) and config.teacher.
TRANSFER_FIELDS = (
    cf.Field('method', 'none', "What the train step minimises (the module docstring); 'none' "
             'trains with cross-entropy alone.', cf.one_of(tuple(REGISTRY), 'a method')),
    cf.Field('at_form', 'code', "'code': β·mean (Q_s − Q_t)² (the released code); 'paper': "
             '(β/2)·‖Q_s − Q_t‖₂.', cf.one_of(losses.AT_FORMS)),
    cf.Field('beta', 1000., 'β, the weight of the transfer term.', cf.number(0)),
    cf.Field('beta_schedule', 'constant', "β over training: 'constant', or 'linear' or 'cosine' "
             'decay to zero.', cf.one_of(losses.BETA_SCHEDULES)),
    cf.Field('p', 2., 'Exponent of the activation attention map Σ_c |A_c|^p.',
             cf.POSITIVE_NUMBER),
    cf.Field('temperature', 4., 'T of KD.', cf.POSITIVE_NUMBER),
    cf.Field('alpha', 0.9, 'α of KD: its weight; (1 − α) on the cross-entropy with the labels.',
             cf.number(0, 1)),
)
TEACHER_FIELDS = (
    cf.Field('workdir', None, 'The workdir of an earlier lpta run, for the methods that need a '
             'teacher.', cf.optional(cf.STRING), kind=str),
)
