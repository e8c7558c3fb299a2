"""Optimisers and learning-rate schedules: `config.optimizer` -> an optax transformation.

The fields of `config.optimizer` are declared in FIELDS (their defaults are those of every run,
configs/common.py). Weight decay λ·w is added to the gradient of every parameter before the
update, as PyTorch's SGD and Adam and Torch7's optim.sgd do; the gradient is clipped to a global
norm first where `clip_global_norm` says so.

Parameter groups. A model family labels its parameters (`Family.parameter_groups`, e.g. RAM's
location policy 'policy'); `config.optimizer.groups.<label>` overrides any field above for that
group, which then has its own optimiser, schedule and clipping (optax.multi_transform). The label
FROZEN marks parameters that never change; unlabelled parameters, and groups the config does not
name, train with `config.optimizer` itself.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

from lpta import config_fields as cf
from lpta.errors import ConfigError

OPTIMIZERS = ('sgd', 'adam')
SCHEDULES = ('step', 'multistep', 'cosine', 'constant')
DEFAULT, FROZEN = 'default', 'frozen'  # parameter group labels

FIELDS = (
    cf.Field('name', 'sgd', "'sgd' (with momentum) or 'adam'.",
             cf.one_of(OPTIMIZERS, 'an optimiser')),
    cf.Field('learning_rate', 0.1, 'The base learning rate.', cf.POSITIVE_NUMBER),
    cf.Field('momentum', 0.9, "'sgd' only; 0 for none.", cf.number(0, below=1)),
    cf.Field('nesterov', False, "'sgd' only: Nesterov momentum.", cf.BOOLEAN),
    cf.Field('dampening', 0.,
             "'sgd' only: Torch7's damped momentum v = μ·v + (1 − d)·g (Torch7 defaults d to μ: "
             'the official LTPA recipe is lr 1, d = 0.9, about lr 0.1 undamped); 0: PyTorch\'s '
             'and optax\'s SGD.', cf.number(0), added=0.),
    cf.Field('adam_betas', (0.9, 0.999), "'adam' only: (β₁, β₂).",
             cf.Check('must be two numbers in [0, 1), e.g. (0.9, 0.999)',
                      cf.tuple_of(cf.number(0, below=1), 'numbers', length=2).accepts)),
    cf.Field('weight_decay', 5e-4, 'λ, added to the gradient as λ·w.', cf.number(0)),
    cf.Field('schedule', 'step', "'step', 'multistep', 'cosine' (to zero over training) or "
             "'constant'.", cf.one_of(SCHEDULES, 'a schedule')),
    cf.Field('decay_factor', 0.5, "'step' and 'multistep': the factor of each decay.",
             cf.POSITIVE_NUMBER),
    cf.Field('decay_every_epochs', 25, "'step' only: epochs between decays (LTPA: 25).",
             cf.POSITIVE_INTEGER),
    cf.Field('decay_epochs', (60, 120, 160), "'multistep' only: the epochs of the decays.",
             cf.tuple_of(cf.POSITIVE_INTEGER, 'positive integers, e.g. (60, 120, 160)')),
    cf.Field('decay_factors', (), "'multistep': one factor per decay epoch; (): decay_factor at "
             'each.', cf.tuple_of(cf.POSITIVE_NUMBER, 'positive numbers, e.g. (2., 0.5)'),
             added=()),
    cf.Field('clip_global_norm', 0., 'Clip the gradient (of each parameter group) to this '
             'global norm before the update; 0: no clipping.', cf.number(0), added=0.),
)
# Group overrides live in config.optimizer.groups.<label> (the module docstring).
GROUP_FIELDS = frozenset(field.name for field in FIELDS)


def group_config(optimizer_config: ml_collections.ConfigDict,
                 label: str) -> ml_collections.ConfigDict:
  """config.optimizer for the parameter group `label`: its fields, with the group's overrides."""
  merged = ml_collections.ConfigDict({name: optimizer_config[name] for name in GROUP_FIELDS
                                      if name in optimizer_config})
  merged.update(dict(optimizer_config.get('groups', {}).get(label, {})))
  return merged


def default_config() -> ml_collections.ConfigDict:
  config = cf.default_config(FIELDS)
  config.groups = ml_collections.ConfigDict()
  return config


def validate(optimizer_config: ml_collections.ConfigDict, labels=()) -> None:
  """ConfigError naming the field for a bad `config.optimizer`, or a group override that names
  no label of `labels` (the family's parameter groups) or no optimiser field."""
  for label, overrides in optimizer_config.get('groups', {}).items():
    if label not in labels:
      raise ConfigError(f'config.optimizer.groups.{label} names no parameter group of this '
                        f'model; its groups: {", ".join(labels) or "none"}.')
    unknown = sorted(set(overrides) - GROUP_FIELDS)
    if unknown:
      raise ConfigError(f'config.optimizer.groups.{label}.{unknown[0]} is not an optimiser '
                        f'field; use those of config.optimizer ({", ".join(sorted(GROUP_FIELDS))}).')
    _validate_one(group_config(optimizer_config, label), f'config.optimizer.groups.{label}')
  _validate_one(optimizer_config, 'config.optimizer')


def _validate_one(optimizer_config: ml_collections.ConfigDict, part: str) -> None:
  optimizer = cf.validated(optimizer_config, FIELDS, part)
  if optimizer.decay_factors and optimizer.schedule != 'multistep':
    raise ConfigError(f'{part}.decay_factors is used by the multistep schedule only, '
                      f'not {optimizer.schedule!r}; set it to () or the schedule to multistep.')
  if optimizer.decay_factors and len(optimizer.decay_factors) != len(optimizer.decay_epochs):
    raise ConfigError(
        f'{part}.decay_factors has {len(optimizer.decay_factors)} factors for '
        f'{len(optimizer.decay_epochs)} decay_epochs; give one per epoch, or () to use '
        'decay_factor at each.')
  dampening = optimizer.dampening
  if dampening and (optimizer.name != 'sgd' or optimizer.nesterov
                    or not optimizer.momentum or not 0 < dampening <= 1):
    raise ConfigError(
        f'{part}.dampening={dampening} needs SGD with momentum, without '
        'Nesterov (as in Torch7), and a value in (0, 1]; set it to 0 otherwise.')


def learning_rate_schedule(optimizer_config: ml_collections.ConfigDict,
                           steps_per_epoch: int, num_epochs: int) -> optax.Schedule:
  """The learning rate as a function of the step, from `config.optimizer`:
    'step': × decay_factor every decay_every_epochs (LTPA: × 0.5 every 25 epochs);
    'multistep': × decay_factor (or the matching entry of decay_factors) at each epoch in
      decay_epochs;
    'cosine': cosine decay to zero over training; 'constant'."""
  base = optimizer_config.learning_rate
  if optimizer_config.schedule == 'step':
    return optax.exponential_decay(
        base, transition_steps=optimizer_config.decay_every_epochs * steps_per_epoch,
        decay_rate=optimizer_config.decay_factor, staircase=True)
  if optimizer_config.schedule == 'multistep':
    factors = (optimizer_config.decay_factors
               or (optimizer_config.decay_factor,) * len(optimizer_config.decay_epochs))
    return optax.piecewise_constant_schedule(
        base, {epoch * steps_per_epoch: factor
               for epoch, factor in zip(optimizer_config.decay_epochs, factors)})
  if optimizer_config.schedule == 'cosine':
    return optax.cosine_decay_schedule(base, num_epochs * steps_per_epoch)
  return optax.constant_schedule(base)


def create_optimizer(optimizer_config: ml_collections.ConfigDict, steps_per_epoch: int,
                     num_epochs: int, labels=None) -> optax.GradientTransformation:
  """The optimiser of `config.optimizer`; `labels`: a tree like the parameters of their group
  labels (Family.parameter_groups), or None: one group. Each group named in
  `config.optimizer.groups` gets its own optimiser and schedule, FROZEN ones no update."""
  groups = optimizer_config.get('groups', {})
  used = set(jax.tree.leaves(labels)) if labels is not None else set()
  if not any(label == FROZEN or label in groups for label in used):
    # One optimiser for all: the optimiser state has the structure it had before groups existed.
    return _single_optimizer(optimizer_config, steps_per_epoch, num_epochs)
  transforms = {label: (optax.set_to_zero() if label == FROZEN else _single_optimizer(
      group_config(optimizer_config, label), steps_per_epoch, num_epochs))
                for label in used}
  return optax.multi_transform(transforms, labels)


def _single_optimizer(optimizer_config: ml_collections.ConfigDict, steps_per_epoch: int,
                      num_epochs: int) -> optax.GradientTransformation:
  """Clipping (if asked), weight decay, then SGD with momentum (optionally Nesterov or
  Torch7-damped) or Adam, with its learning-rate schedule."""
  schedule = learning_rate_schedule(optimizer_config, steps_per_epoch, num_epochs)
  if optimizer_config.name == 'adam':
    b1, b2 = optimizer_config.adam_betas
    update = optax.adam(schedule, b1=b1, b2=b2)
  elif optimizer_config.dampening:
    update = optax.chain(damped_momentum(optimizer_config.momentum, optimizer_config.dampening),
                         optax.scale_by_learning_rate(schedule))
  else:
    update = optax.sgd(schedule, momentum=optimizer_config.momentum or None,
                       nesterov=optimizer_config.nesterov)
  steps = [optax.add_decayed_weights(optimizer_config.weight_decay), update]
  if optimizer_config.clip_global_norm:
    steps.insert(0, optax.clip_by_global_norm(optimizer_config.clip_global_norm))
  return optax.chain(*steps)


class DampedMomentumState(NamedTuple):
  count: jax.Array  # steps taken: int32 []
  velocity: Any  # v, like the parameters


def damped_momentum(momentum: float, dampening: float) -> optax.GradientTransformation:
  """Torch7's (and PyTorch's) SGD momentum with dampening d: v_1 = g_1, then
  v_t = μ·v_{t−1} + (1 − d)·g_t; the update is v_t (scaled by −lr after it). Torch7's optim.sgd
  defaults d to μ, so in the official LTPA runs (μ = d = 0.9, lr 1) v settles at the running
  average of the gradient and the step at lr · g_avg, as undamped SGD at lr/10 would take. With
  d = 0 this is optax.sgd's momentum."""

  def init(params):
    return DampedMomentumState(jnp.zeros([], jnp.int32), jax.tree.map(jnp.zeros_like, params))

  def update(updates, state, params=None):
    del params
    first = state.count == 0
    velocity = jax.tree.map(
        lambda v, g: jnp.where(first, g, momentum * v + (1 - dampening) * g),
        state.velocity, updates)
    return velocity, DampedMomentumState(optax.safe_increment(state.count), velocity)

  return optax.GradientTransformation(init, update)
