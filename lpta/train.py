"""Training and evaluation: one jitted step over a 1-D ('data',) device mesh.

The train state is replicated on every device and each batch is sharded along the mesh, so the
same code runs on one CPU, several GPUs and a multi-host TPU pod, and BatchNorm statistics are
computed over the global batch. Entry point: `train_and_evaluate(config, workdir)`.

The loop knows models, data and losses only through their interfaces: the model family
(lpta.families), the data source (lpta.data) and the objective (lpta.objectives).

Top-level fields of the config (the others are documented in lpta.families, lpta.data and
lpta.objectives):
  seed: drives initialisation, data order, augmentation and dropout; a run is a function of it.
  batch_size, eval_batch_size: global batch sizes; both must be divisible by the device count.
  num_epochs: length of training.
  optimizer: `name` 'sgd' (SGD with `momentum`, `nesterov`, `dampening`: Torch7's damped
    momentum, `damped_momentum`) or 'adam' (Adam with `adam_betas`),
    with `learning_rate`, `weight_decay` (λ·w added to the gradient of every parameter, as in
    PyTorch and Torch7) and a `schedule`:
      'step': × `decay_factor` every `decay_every_epochs` (LTPA: × 0.5 every 25 epochs);
      'multistep': × `decay_factor` (or the matching entry of `decay_factors`) at each epoch
        in `decay_epochs`;
      'cosine': cosine decay to zero over training; 'constant'.
  half_precision: bfloat16 computation with float32 parameters, optimiser state and BN statistics.
  eval_every_epochs: evaluate, write figures and checkpoint every this many epochs.
  log_every_steps: write training scalars (and check that the loss is finite) this often.
  keep_checkpoints, keep_best_checkpoints: how many latest checkpoints are kept, and how many
    best by validation accuracy (only with a validation split, config.data.validation_split).
  num_attention_images: test images in the figures (0 turns them off).
  evals: evaluators (lpta.evaluators) run on the checkpoint just saved, every `every_epochs` of
    each and at the end, e.g. config.evals.fgsm = {'every_epochs': 5, 'max_examples': 500};
    single-process training only.
  transfer, teacher: the training objective and, for attention transfer, the teacher's workdir.
  init_from: fine-tuning from another run's parameters (lpta.fine_tuning).

A run resumes from the latest intact checkpoint in its workdir. It refuses to resume with another
model, data, schedule or seed (lpta.checkpoints.RESUMABLE_CHANGES lists what may change), stops
at the first logging step whose loss is not finite, and saves a checkpoint when interrupted
(Ctrl-C), after the step in flight.
"""

import dataclasses
import functools
import json
import os
import signal
import threading
import time
from typing import Any, NamedTuple

from absl import logging
from clu import metric_writers
from clu import metrics
from clu import periodic_actions
from etils import epath
import flax
import flax.linen as nn
from flax.training import train_state
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from lpta import checkpoints
from lpta import data
from lpta import evaluators
from lpta import families
from lpta import fine_tuning
from lpta import objectives
from lpta import runs
from lpta import sharding
from lpta import summaries
from lpta.data import preprocessing
from lpta.errors import CheckpointError, ConfigError, TrainingDiverged

SCHEDULES = ('step', 'multistep', 'cosine', 'constant')
OPTIMIZERS = ('sgd', 'adam')


class TrainState(train_state.TrainState):
  batch_stats: Any  # {} for a model without BatchNorm


@flax.struct.dataclass
class TrainMetrics(metrics.Collection):
  loss: metrics.Average.from_output('loss')
  accuracy: metrics.Accuracy


def train_metrics_class(term_names: tuple[str, ...]) -> type[metrics.Collection]:
  """TrainMetrics plus an average of each named objective term (e.g. per-point AT losses)."""
  if not term_names:
    return TrainMetrics
  return TrainMetrics.create(loss=metrics.Average.from_output('loss'), accuracy=metrics.Accuracy,
                             **{name: metrics.Average.from_output(name) for name in term_names})


def validate_config(config: ml_collections.ConfigDict,
                    num_devices: int) -> tuple[families.Family, data.Source]:
  """The run's family and data source; ConfigError for a bad value, before anything is read."""
  family = families.get(config.model)
  source = data.get(config.data)
  objectives.validate(config)
  for field in ('batch_size', 'eval_batch_size', 'num_epochs', 'eval_every_epochs',
                'log_every_steps', 'keep_checkpoints'):
    if not isinstance(config[field], int) or config[field] < 1:
      raise ConfigError(f'config.{field}={config[field]!r} must be a positive integer.')
  if not isinstance(config.keep_best_checkpoints, int) or config.keep_best_checkpoints < 0:
    raise ConfigError(f'config.keep_best_checkpoints={config.keep_best_checkpoints!r} must be '
                      'an integer >= 0.')
  for field in ('batch_size', 'eval_batch_size'):
    if config[field] % num_devices:
      raise ConfigError(
          f'config.{field}={config[field]} is not divisible by the {num_devices} devices; use '
          f'a multiple of {num_devices} (e.g. --config.{field}='
          f'{max(num_devices, config[field] // num_devices * num_devices)}).')
  optimizer = config.optimizer
  if optimizer.name not in OPTIMIZERS:
    raise ConfigError(f'config.optimizer.name={optimizer.name!r} is not an optimiser; use one of '
                      f'{", ".join(OPTIMIZERS)}.')
  if optimizer.schedule not in SCHEDULES:
    raise ConfigError(f'config.optimizer.schedule={optimizer.schedule!r} is not a schedule; '
                      f'use one of {", ".join(SCHEDULES)}.')
  if not optimizer.learning_rate > 0:
    raise ConfigError(f'config.optimizer.learning_rate={optimizer.learning_rate} must be '
                      'positive.')
  betas = optimizer.adam_betas
  if len(betas) != 2 or not all(0 <= beta < 1 for beta in betas):
    raise ConfigError(f'config.optimizer.adam_betas={tuple(betas)} must be two numbers in [0, 1), '
                      'e.g. (0.9, 0.999).')
  if not 0 <= optimizer.momentum < 1 or optimizer.weight_decay < 0:
    raise ConfigError('config.optimizer.momentum must lie in [0, 1) and '
                      'config.optimizer.weight_decay must be >= 0.')
  if optimizer.decay_factors and optimizer.schedule != 'multistep':
    raise ConfigError(f'config.optimizer.decay_factors is used by the multistep schedule only, '
                      f'not {optimizer.schedule!r}; set it to () or the schedule to multistep.')
  if optimizer.decay_factors and len(optimizer.decay_factors) != len(optimizer.decay_epochs):
    raise ConfigError(
        f'config.optimizer.decay_factors has {len(optimizer.decay_factors)} factors for '
        f'{len(optimizer.decay_epochs)} decay_epochs; give one per epoch, or () to use '
        'decay_factor at each.')
  if optimizer.dampening and (optimizer.name != 'sgd' or optimizer.nesterov
                              or not optimizer.momentum or not 0 < optimizer.dampening <= 1):
    raise ConfigError(
        f'config.optimizer.dampening={optimizer.dampening} needs SGD with momentum, without '
        'Nesterov (as in Torch7), and a value in (0, 1]; set it to 0 otherwise.')
  evaluators.scheduled(config.evals, jax.process_count())
  fine_tuning.validate(config.init_from)
  return family, source


def learning_rate_schedule(optimizer_config: ml_collections.ConfigDict,
                           steps_per_epoch: int, num_epochs: int) -> optax.Schedule:
  """The learning rate as a function of the step, from `config.optimizer`."""
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


def create_optimizer(optimizer_config: ml_collections.ConfigDict, schedule: optax.Schedule,
                     frozen=None) -> optax.GradientTransformation:
  """SGD with momentum or Adam; weight decay added to the gradient first (as PyTorch's SGD and
  Adam do). `frozen`: a tree of booleans like the parameters, True for those that never change
  (no update, no weight decay), or None."""
  if optimizer_config.name == 'adam':
    b1, b2 = optimizer_config.adam_betas
    update = optax.adam(schedule, b1=b1, b2=b2)
  elif optimizer_config.dampening:
    update = optax.chain(damped_momentum(optimizer_config.momentum, optimizer_config.dampening),
                         optax.scale_by_learning_rate(schedule))
  else:
    update = optax.sgd(schedule, momentum=optimizer_config.momentum or None,
                       nesterov=optimizer_config.nesterov)
  optimizer = optax.chain(optax.add_decayed_weights(optimizer_config.weight_decay), update)
  if frozen is None:
    return optimizer
  return optax.multi_transform({'trained': optimizer, 'frozen': optax.set_to_zero()},
                               jax.tree.map(lambda f: 'frozen' if f else 'trained', frozen))


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


def create_train_state(rng, model, tx, image_shape, mesh,
                       family: families.Family) -> TrainState:
  """Initialises parameters and optimiser state, replicated over `mesh`."""

  def init():
    variables = model.init({'params': rng, **family.rngs(rng)}, jnp.zeros((1, *image_shape)),
                           train=False)
    return TrainState.create(apply_fn=model.apply, params=variables['params'], tx=tx,
                             batch_stats=variables.get('batch_stats', {}))

  abstract = jax.eval_shape(init)
  return jax.jit(init, out_shardings=jax.tree.map(lambda _: sharding.replicated(mesh),
                                                  abstract))()


def _with_pretrained_variables(state: TrainState, pretrained) -> TrainState:
  """`state` with the top-level modules of `pretrained` ({'params': {module: tree}, 'batch_stats':
  ...}, from the family) in place of the freshly initialised ones; shapes must match."""
  if not pretrained:
    return state
  replaced = {}
  for collection in ('params', 'batch_stats'):
    current = dict(getattr(state, collection))
    for module, tree in pretrained.get(collection, {}).items():
      expected = jax.tree.map(lambda x: x.shape, current[module])
      if jax.tree.map(lambda x: x.shape, tree) != expected:
        raise CheckpointError(f'the pretrained {collection} of {module!r} do not fit the model '
                              '(other shapes); pretrain with the same trunk settings.')
      current[module] = tree
    replaced[collection] = current
  return state.replace(**replaced)


def _model_variables(state: TrainState, params) -> dict[str, Any]:
  if state.batch_stats:
    return {'params': params, 'batch_stats': state.batch_stats}
  return {'params': params}


def train_step(state: TrainState, train_metrics: metrics.Collection, batch, normalisation, rng,
               teacher_arrays, *, source: data.Source, family: families.Family,
               objective: objectives.Objective, num_train_steps: int):
  """One SGD step on a global batch; returns the new state and the accumulated metrics.

  batch: {'image': uint8 [B, H, W, C], 'label': int32 [B], ...}, sharded along 'data'.
  normalisation: the student's input statistics. teacher_arrays: the teacher's `Run.arrays`
  (None without a teacher); it runs in inference mode and is neither differentiated nor
  returned. Augmentation and the model's random streams draw from fold_in(rng, step), so a run
  is reproducible and resumes exactly.
  """
  augment_rng, model_rng = jax.random.split(jax.random.fold_in(rng, state.step))
  batch = source.augment(augment_rng, batch)
  pixels, labels = preprocessing.to_unit_range(batch['image']), batch['label']
  targets = jax.lax.stop_gradient(objective.teacher_targets(teacher_arrays, pixels, labels))
  rngs = family.rngs(model_rng)

  def loss_fn(params):
    variables = _model_variables(state, params)
    (logits, aux), updates = state.apply_fn(variables, normalisation(pixels), train=True,
                                            rngs=rngs, mutable=['batch_stats'])

    def inference_loss(inputs):
      logits = state.apply_fn(variables, normalisation(inputs), train=False, rngs=rngs)[0]
      return objectives.cross_entropy(logits, labels)

    student = objectives.Student(
        logits=logits, aux=aux, transfer_points=family.transfer_points(aux), pixels=pixels,
        labels=labels, step=state.step, num_train_steps=num_train_steps,
        inference_loss=inference_loss)
    loss, terms = objective(student, targets)
    return loss, (logits, updates, terms)

  (loss, (logits, updates, terms)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params)
  state = state.apply_gradients(grads=grads,
                                batch_stats=updates.get('batch_stats', state.batch_stats))
  step_metrics = type(train_metrics).single_from_model_output(
      loss=loss, logits=logits, labels=labels, **terms)
  return state, train_metrics.merge(step_metrics)


def eval_step(state: TrainState, eval_metrics: metrics.Collection, batch, normalisation, rng, *,
              family: families.Family):
  """Accumulates the family's metrics over one padded batch; padding (mask 0) is not counted."""
  variables = _model_variables(state, state.params)

  def predict(images, rng, **kwargs):
    return state.apply_fn(variables, images, train=False, rngs=family.rngs(rng), **kwargs)

  outputs = family.eval_outputs(
      predict, normalisation(preprocessing.to_unit_range(batch['image'])), batch, rng)
  return eval_metrics.merge(
      type(eval_metrics).single_from_model_output(**outputs, mask=batch['mask']))


def figure_arrays(state: TrainState, teacher_arrays, images, normalisation, *,
                  family: families.Family, teacher: runs.Run | None):
  """(the student's figure arrays, the teacher's or ()) for uint8 images [N, H, W, C]."""
  pixels = preprocessing.to_unit_range(images)
  _, aux = state.apply_fn(_model_variables(state, state.params), normalisation(pixels),
                          train=False, rngs=family.rngs(jax.random.key(0)))
  if teacher is None:
    return family.figure_arrays(aux), ()
  return family.figure_arrays(aux), teacher.family.figure_arrays(
      teacher.apply(teacher_arrays, pixels)[1])


def all_finite(tree) -> jax.Array:
  """Whether every leaf of a pytree of arrays is finite (a boolean scalar)."""
  return jnp.all(jnp.array([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


class Trainer:
  """The jitted functions of one run, compiled once for fixed shapes and shardings."""

  def __init__(self, family: families.Family, source: data.Source,
               objective: objectives.Objective, num_train_steps: int, mesh):
    state_sharding, batch = sharding.replicated(mesh), sharding.batch_sharded(mesh)
    self.train_step = jax.jit(
        functools.partial(train_step, source=source, family=family, objective=objective,
                          num_train_steps=num_train_steps),
        in_shardings=(state_sharding, state_sharding, batch, state_sharding, state_sharding,
                      state_sharding),
        out_shardings=(state_sharding, state_sharding), donate_argnums=(0, 1))
    self.eval_step = jax.jit(functools.partial(eval_step, family=family),
                             out_shardings=state_sharding, donate_argnums=(1,))
    self.figure_arrays = jax.jit(
        functools.partial(figure_arrays, family=family, teacher=objective.teacher),
        in_shardings=state_sharding, out_shardings=state_sharding)
    self.all_finite = jax.jit(all_finite, out_shardings=state_sharding)
    self.family = family
    self.mesh = mesh

  def to_global(self, local_batch):
    """Host-local numpy batch (this process's rows) -> global arrays sharded along 'data'."""
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(sharding.batch_sharded(self.mesh), x),
        local_batch)

  def evaluate(self, state, dataset, split: str, local_batch_size: int, normalisation,
               rng) -> dict[str, float]:
    """The family's metrics on `split`, named '<split>_<metric>'. Each batch gets its own key,
    folded from `rng`, the split and the batch's index: the same at every evaluation, and no two
    batches share random draws (e.g. sampled glimpse trajectories)."""
    eval_metrics = sharding.replicate(self.family.eval_metrics.empty(), self.mesh)
    split_rng = jax.random.fold_in(rng, data.EVAL_SPLITS.index(split))
    for index, batch in enumerate(dataset.eval_batches(split, local_batch_size)):
      eval_metrics = self.eval_step(state, eval_metrics, self.to_global(batch), normalisation,
                                    jax.random.fold_in(split_rng, index))
    return {f'{split}_{name}': float(value) for name, value in eval_metrics.compute().items()}


def _make_workdir(workdir: epath.Path) -> None:
  try:
    workdir.mkdir(parents=True, exist_ok=True)
  except OSError as error:
    raise ConfigError(f'cannot create --workdir={workdir} ({error.strerror or error}); choose a '
                      'folder you can write to.') from error


def _refuse_incompatible_resume(directory: epath.Path, config: ml_collections.ConfigDict) -> None:
  """CheckpointError, before anything is read or written, if the newest readable checkpoint
  under `directory` was written with a config that this run may not resume with."""
  if not directory.is_dir():
    return
  reader = checkpoints.Checkpointer(directory, read_only=True)
  try:
    for step in reversed(reader.all_steps()):
      try:
        saved_config = reader.read_json(step, 'config')
      except CheckpointError:
        continue  # damaged: _resume says so and falls back
      change = checkpoints.describe_config_change(saved_config, config)
      if change:
        raise CheckpointError(
            f'{directory} holds checkpoints of a run whose {change}; a resumed run keeps the '
            'model, data, schedule and seed it started with. Use another --workdir, or the '
            'config that wrote them.')
      return
  finally:
    reader.close()


def _resume(checkpointer: checkpoints.Checkpointer, state: TrainState,
            workdir: epath.Path) -> TrainState:
  """The latest intact checkpoint restored into `state` (or `state` if there is none).

  Damaged newer checkpoints are moved to `<workdir>/damaged_checkpoints/` (nothing is deleted);
  if no checkpoint can be read, nothing is moved and the run is refused.
  """
  steps = checkpointer.all_steps()
  for step in reversed(steps):
    try:
      restored = checkpointer.restore_state(step, state)
    except CheckpointError as error:
      logging.warning('The checkpoint at step %d is damaged (%s); trying the one before.', step,
                      str(error).split(' (', 1)[-1].rstrip(').'))
      continue
    damaged = [newer for newer in steps if newer > step]
    if damaged:
      _set_aside(checkpointer, damaged, workdir / 'damaged_checkpoints')
    logging.info('Resuming from the checkpoint at step %d in %s.', step, checkpointer.directory)
    return restored
  if steps:
    raise CheckpointError(
        f'none of the checkpoints in {checkpointer.directory} (steps '
        f'{", ".join(map(str, steps))}) can be read, and nothing was changed; move them away or '
        'use another --workdir.')
  return state


def _initialise_from(config, state: TrainState, family, source, workdir: epath.Path,
                     mesh) -> TrainState:
  """`state` with the parameters and statistics of the run in `config.init_from`
  (lpta.fine_tuning); what was loaded is logged and written to <workdir>/init_from.json."""
  variables, report = fine_tuning.initialise_from(
      config.init_from, {'params': state.params, 'batch_stats': state.batch_stats}, family,
      source.num_classes, source.image_shape, mesh)
  if jax.process_index() == 0:
    (workdir / 'init_from.json').write_text(json.dumps(dataclasses.asdict(report), indent=1))
  # The optimiser state (momentum) starts from zero either way.
  return state.replace(params=variables['params'],
                       batch_stats=variables.get('batch_stats', state.batch_stats))


def _set_aside(checkpointer: checkpoints.Checkpointer, steps, destination: epath.Path) -> None:
  if jax.process_index() == 0:
    destination.mkdir(parents=True, exist_ok=True)
    for step in steps:
      target = destination / f'{step}-{int(time.time())}'
      (checkpointer.directory / str(step)).rename(target)
      logging.warning('Moved the damaged checkpoint at step %d to %s.', step, target)
  multihost_utils.sync_global_devices('lpta: damaged checkpoints set aside')
  checkpointer.reload()


def _load_teacher(config: ml_collections.ConfigDict, mesh, image_shape) -> runs.Run | None:
  """The frozen teacher the objective needs, checked against the student's data; else None."""
  if not objectives.needs_teacher(config.transfer):
    return None
  teacher_workdir = config.teacher.workdir
  if not epath.Path(teacher_workdir, 'checkpoints').is_dir():
    raise CheckpointError(
        f'config.teacher.workdir={teacher_workdir} holds no checkpoint; train the teacher there '
        f'first (python main.py --config=<teacher config> --workdir={teacher_workdir}).')
  teacher = runs.load_run(teacher_workdir, mesh=mesh)
  if teacher.config.data.name != config.data.name or teacher.image_shape != tuple(image_shape):
    raise ConfigError(
        f'the teacher in {teacher.checkpoint} was trained on {teacher.config.data.name} '
        f'{teacher.image_shape} and the student trains on {config.data.name} '
        f'{tuple(image_shape)}; use a teacher trained on the same data set.')
  logging.info('Restored the teacher %s (%s) from %s.', teacher.config.model.name,
               dict(teacher.config.model), teacher.checkpoint)
  return teacher


def _save_config(config: ml_collections.ConfigDict, workdir: epath.Path) -> None:
  if jax.process_index() == 0:
    (workdir / 'config.json').write_text(config.to_json_best_effort(indent=2) + '\n')


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: epath.PathLike,
                       mesh: jax.sharding.Mesh | None = None) -> tuple[TrainState, dict]:
  """Trains `config` in `workdir` (a path or URL), resuming from its latest checkpoint.

  Returns the final state and the last evaluation metrics ({} if no evaluation ran).
  """
  mesh = mesh or sharding.make_mesh()
  family, source = validate_config(config, mesh.size)
  workdir = epath.Path(workdir)
  checkpoints.check_workdir(workdir)
  _refuse_incompatible_resume(workdir / 'checkpoints', config)
  model = family.build(source.num_classes, families.compute_dtype(config.half_precision))
  teacher = _load_teacher(config, mesh, source.image_shape)
  objective = family.objective(config, model, source.image_shape, teacher)
  dataset = source.load()
  steps_per_epoch = dataset.num_train_examples // config.batch_size
  if steps_per_epoch == 0:
    raise ConfigError(f'config.batch_size={config.batch_size} is larger than the '
                      f'{dataset.num_train_examples} training examples.')
  num_train_steps = steps_per_epoch * config.num_epochs
  _make_workdir(workdir)
  schedule = learning_rate_schedule(config.optimizer, steps_per_epoch, config.num_epochs)
  init_rng, train_rng = jax.random.split(jax.random.key(config.seed))
  abstract_params = families.abstract_variables_and_outputs(model, source.image_shape)[0]['params']
  optimizer = create_optimizer(config.optimizer, schedule,
                               family.frozen_parameters(abstract_params))
  state = create_train_state(init_rng, model, optimizer, source.image_shape, mesh, family)
  pretrained = family.pretrained_variables(mesh)
  if pretrained is not None and config.init_from.workdir:
    raise ConfigError(f'config.init_from.workdir and the pretrained modules of '
                      f'{config.model.name} (e.g. model.trunk_workdir) would both set '
                      'parameters; use one of them.')
  state = _with_pretrained_variables(state, pretrained)
  logging.info('Model %s (%s family): %s trainable parameters; %d steps of %d images (%d per '
               'epoch).', config.model.name, family.name,
               f'{families.count_parameters(state.params):,}', num_train_steps,
               config.batch_size, steps_per_epoch)
  keep_best = config.keep_best_checkpoints if 'validation' in dataset.eval_splits else 0
  checkpointer = checkpoints.Checkpointer(workdir / 'checkpoints', config.keep_checkpoints,
                                          keep_best)
  try:
    if config.init_from.workdir and not checkpointer.all_steps():
      state = _initialise_from(config, state, family, source, workdir, mesh)
    state = _resume(checkpointer, state, workdir)
  except CheckpointError:
    checkpointer.close()
    raise
  _save_config(config, workdir)
  loop = _TrainLoop(
      config=config, workdir=workdir, model=model,
      trainer=Trainer(family, source, objective, num_train_steps, mesh), dataset=dataset,
      checkpointer=checkpointer, schedule=schedule, steps_per_epoch=steps_per_epoch,
      teacher_arrays=teacher.arrays if teacher else None,
      metrics_class=train_metrics_class(objective.term_names),
      dataset_info={'name': config.data.name, 'image_shape': list(source.image_shape),
                    'class_names': list(dataset.class_names)})
  return loop.run(state, num_train_steps, train_rng)


class _InterruptFlag:
  """Turns the first Ctrl-C (SIGINT) into a request to stop after the step in flight; a second
  one interrupts at once."""

  def __init__(self):
    self.requested = False
    self._previous = None

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGINT, self._handle)
    return self

  def _handle(self, signum, frame):
    del signum, frame
    if self.requested:
      raise KeyboardInterrupt
    self.requested = True
    logging.warning('Interrupted: stopping after the current step to save a checkpoint (press '
                    'Ctrl-C again to stop at once, without saving).')

  def __exit__(self, *exc_info):
    if self._previous is not None:
      signal.signal(signal.SIGINT, self._previous)

  def any_process(self) -> bool:
    """Whether any process was interrupted (every process must stop at the same step)."""
    if jax.process_count() == 1:
      return self.requested
    return bool(multihost_utils.process_allgather(np.array(self.requested)).any())


@dataclasses.dataclass
class _TrainLoop:
  """Steps, logging, evaluation, figures and checkpoints of one run."""
  config: ml_collections.ConfigDict
  workdir: epath.Path
  model: nn.Module
  trainer: Trainer
  dataset: Any  # lpta.data.in_memory.Dataset or lpta.data.streamed.StreamedDataset
  checkpointer: checkpoints.Checkpointer
  schedule: optax.Schedule
  steps_per_epoch: int
  teacher_arrays: Any
  metrics_class: type[metrics.Collection]
  dataset_info: dict[str, Any]

  def __post_init__(self):
    self.normalisation = self._replicate(self.dataset.statistics)
    self.writer = metric_writers.create_default_writer(
        os.fspath(self.workdir), just_logging=jax.process_index() > 0)
    # The same images on every process (process 0's first test images).
    self.figure_images = multihost_utils.broadcast_one_to_all(
        self.dataset.first_images(self.config.num_attention_images))
    self.eval_rng = self._replicate(jax.random.key(self.config.seed + 1))
    self.scheduled_evaluators = evaluators.scheduled(self.config.evals)

  def _replicate(self, tree):
    return sharding.replicate(tree, self.trainer.mesh)

  def run(self, state, num_train_steps, train_rng):
    """Trains from `state.step` to `num_train_steps`; returns (state, last eval metrics)."""
    config = self.config
    eval_every_steps = self.steps_per_epoch * config.eval_every_epochs
    report_progress = periodic_actions.ReportProgress(
        num_train_steps=num_train_steps, writer=self.writer, every_steps=config.log_every_steps,
        every_secs=60)
    step = int(state.step)
    if step >= num_train_steps:
      logging.info('%s already holds the final checkpoint (step %d); nothing to train.',
                   self.workdir, step)
    batches = self.dataset.train_batches(config.batch_size // jax.process_count(), config.seed,
                                         start_step=step)
    train_rng = self._replicate(train_rng)
    train_metrics = self._replicate(self.metrics_class.empty())
    eval_metrics, start = {}, time.time()
    try:
      with _InterruptFlag() as interrupt:
        while step < num_train_steps:
          state, train_metrics = self.trainer.train_step(
              state, train_metrics, self.trainer.to_global(next(batches)), self.normalisation,
              train_rng, self.teacher_arrays)
          step += 1
          report_progress(step)
          evaluate = step % eval_every_steps == 0 or step == num_train_steps
          # The loss is checked before anything is saved.
          if evaluate or step % config.log_every_steps == 0:
            self._log_train_metrics(step, train_metrics)
            train_metrics = self._replicate(self.metrics_class.empty())
          if evaluate:
            with report_progress.timed('eval'):
              eval_metrics = self._evaluate(state, step, time.time() - start)
            with report_progress.timed('checkpoint'):
              self._save(step, state, eval_metrics)
            with report_progress.timed('evaluators'):
              self._run_evaluators(state, step, num_train_steps)
          if step < num_train_steps and interrupt.any_process():
            self._save_on_interrupt(step, state)
            raise KeyboardInterrupt
    finally:
      self.writer.flush()
      self.checkpointer.close()
    return state, eval_metrics

  def _log_train_metrics(self, step, train_metrics):
    """Writes the training scalars; TrainingDiverged if the loss is not finite."""
    scalars = {f'train_{name}': float(value)
               for name, value in train_metrics.compute().items()}
    if not np.isfinite(scalars['train_loss']):
      latest = self.checkpointer.latest_step()
      kept = (f'kept its latest checkpoint (step {latest})' if latest is not None
              else 'had saved no checkpoint')
      raise TrainingDiverged(
          f'the training loss is {scalars["train_loss"]} at step {step} (its mean since the '
          f'last log); the run stopped and {kept}. Lower config.optimizer.learning_rate (now '
          f'{self.config.optimizer.learning_rate}) and train in a new --workdir.')
    self.writer.write_scalars(step, {**scalars, 'learning_rate': self.schedule(step - 1)})

  def _save(self, step, state, eval_metrics=None):
    self.checkpointer.save(step, state, self.config, self.dataset_info, self.normalisation,
                           eval_metrics)

  def _save_on_interrupt(self, step, state):
    if self.checkpointer.latest_step() == step:
      return
    if not bool(self.trainer.all_finite(state.params)):
      logging.warning('Interrupted at step %d with non-finite parameters: no checkpoint saved.',
                      step)
      return
    logging.warning('Interrupted at step %d: saving a checkpoint to resume from.', step)
    self._save(step, state)

  def _run_evaluators(self, state, step, num_train_steps):
    """The evaluators of `config.evals` that are due at `step` (every `every_epochs`, and at
    the end), on the state just saved; results under <workdir>/eval/<name>/ and TensorBoard."""
    due = [(name, config) for name, config, every_epochs in self.scheduled_evaluators
           if step % (every_epochs * self.steps_per_epoch) == 0 or step == num_train_steps]
    if not due:
      return
    run = runs.Run(
        checkpoint=os.fspath(self.workdir / 'checkpoints' / str(step)), step=step,
        config=self.config, family=self.trainer.family, model=self.model,
        variables=_model_variables(state, state.params), normalisation=self.normalisation,
        class_names=tuple(self.dataset_info['class_names']),
        image_shape=tuple(self.dataset_info['image_shape']))
    for name, config in due:
      results = evaluators.evaluate_run(run, name, config, self.writer)
      logging.info('Step %d, evaluator %s: %s', step, name,
                   json.dumps({key: round(value, 4) for key, value in results.items()}))

  def _evaluate(self, state, step, seconds):
    """Metrics on every evaluation split, and the figure, at `step`."""
    eval_metrics = {}
    for split in self.dataset.eval_splits:
      eval_metrics.update(self.trainer.evaluate(
          state, self.dataset, split, self.config.eval_batch_size // jax.process_count(),
          self.normalisation, self.eval_rng))
    self.writer.write_scalars(step, eval_metrics)
    logging.info('Step %d (epoch %.1f, %.0f s): %s', step, step / self.steps_per_epoch, seconds,
                 json.dumps({name: round(value, 4) for name, value in eval_metrics.items()}))
    if len(self.figure_images):
      arrays, teacher_arrays = self.trainer.figure_arrays(
          state, self.teacher_arrays, self._replicate(self.figure_images), self.normalisation)
      if jax.process_index() == 0:
        grid = self.trainer.family.draw_figure(
            self.figure_images, [np.asarray(a) for a in arrays],
            [np.asarray(a) for a in teacher_arrays])
        if grid is not None:
          summaries.write_figure(self.writer, self.workdir, step, grid)
    return eval_metrics
