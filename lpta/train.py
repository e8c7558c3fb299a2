"""Training and evaluation: one jitted step over a 1-D ('data',) device mesh.

The train state is replicated on every device and each batch is sharded along the mesh, so the
same code runs on one CPU, several GPUs and a multi-host TPU pod, and BatchNorm statistics are
computed over the global batch. Entry point: `train_and_evaluate(config, workdir)`.

Top-level fields of the config (the others are documented in lpta.models and lpta.input_pipeline):
  seed: drives initialisation, data order, augmentation and dropout; a run is a function of it.
  batch_size, eval_batch_size: global batch sizes; both must be divisible by the device count.
  num_epochs: length of training.
  optimizer: SGD with `learning_rate`, `momentum`, `nesterov`, `weight_decay` (λ·w added to the
    gradient of every parameter, as in PyTorch and Torch7) and a `schedule`:
      'step': × `decay_factor` every `decay_every_epochs` (LTPA: × 0.5 every 25 epochs);
      'multistep': × `decay_factor` at each epoch in `decay_epochs`;
      'cosine': cosine decay to zero over training; 'constant'.
  half_precision: bfloat16 computation with float32 parameters, optimiser state and BN statistics.
  eval_every_epochs: evaluate, write attention figures and checkpoint every this many epochs.
  log_every_steps: write training scalars every this many steps.
  keep_checkpoints, keep_best_checkpoints: how many latest and best-test-accuracy checkpoints
    are kept.
  num_attention_images: test images in the attention figures (0 turns them off).
  transfer, teacher: the training objective and, for attention transfer, the teacher's workdir
    (lpta.objectives).
"""

import dataclasses
import functools
import json
import pathlib
import time
from typing import Any

from absl import logging
from clu import metric_writers
from clu import metrics
from clu import periodic_actions
import flax
from flax.training import train_state
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from lpta import checkpoints
from lpta import input_pipeline
from lpta import losses
from lpta import models
from lpta import objectives
from lpta import streaming_input
from lpta import summaries
from lpta import teacher as teacher_lib
from lpta.errors import ConfigError

SCHEDULES = ('step', 'multistep', 'cosine', 'constant')


class TrainState(train_state.TrainState):
  batch_stats: Any


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


@flax.struct.dataclass
class EvalMetrics(metrics.Collection):
  loss: metrics.Average.from_output('loss')
  accuracy: metrics.Accuracy
  top5_accuracy: metrics.Average.from_output('top5_correct')


@flax.struct.dataclass
class Normalisation:
  """Input statistics fitted on the training split (see input_pipeline.normalise)."""
  mean: jax.Array
  std: jax.Array
  zca_matrix: jax.Array | None


def validate_config(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """Raises ConfigError for a bad value, before any data is read or anything compiles."""
  models.validate(config.model)
  input_pipeline.validate_config(config.data)
  objectives.validate(config)
  for field in ('batch_size', 'eval_batch_size', 'num_epochs', 'eval_every_epochs',
                'log_every_steps'):
    if not isinstance(config[field], int) or config[field] < 1:
      raise ConfigError(f'config.{field}={config[field]!r} must be a positive integer.')
  for field in ('batch_size', 'eval_batch_size'):
    if config[field] % num_devices:
      raise ConfigError(
          f'config.{field}={config[field]} is not divisible by the {num_devices} devices; use '
          f'a multiple of {num_devices} (e.g. --config.{field}='
          f'{max(num_devices, config[field] // num_devices * num_devices)}).')
  optimizer = config.optimizer
  if optimizer.schedule not in SCHEDULES:
    raise ConfigError(f'config.optimizer.schedule={optimizer.schedule!r} is not a schedule; '
                      f'use one of {", ".join(SCHEDULES)}.')
  if not optimizer.learning_rate > 0:
    raise ConfigError(f'config.optimizer.learning_rate={optimizer.learning_rate} must be '
                      'positive.')
  if not 0 <= optimizer.momentum < 1 or optimizer.weight_decay < 0:
    raise ConfigError('config.optimizer.momentum must lie in [0, 1) and '
                      'config.optimizer.weight_decay must be >= 0.')


def learning_rate_schedule(optimizer_config: ml_collections.ConfigDict,
                           steps_per_epoch: int, num_epochs: int) -> optax.Schedule:
  """The learning rate as a function of the step, from `config.optimizer`."""
  base = optimizer_config.learning_rate
  if optimizer_config.schedule == 'step':
    return optax.exponential_decay(
        base, transition_steps=optimizer_config.decay_every_epochs * steps_per_epoch,
        decay_rate=optimizer_config.decay_factor, staircase=True)
  if optimizer_config.schedule == 'multistep':
    return optax.piecewise_constant_schedule(
        base, {epoch * steps_per_epoch: optimizer_config.decay_factor
               for epoch in optimizer_config.decay_epochs})
  if optimizer_config.schedule == 'cosine':
    return optax.cosine_decay_schedule(base, num_epochs * steps_per_epoch)
  return optax.constant_schedule(base)


def create_optimizer(optimizer_config: ml_collections.ConfigDict,
                     schedule: optax.Schedule) -> optax.GradientTransformation:
  """SGD with momentum; weight decay added to the gradient before momentum (PyTorch's SGD)."""
  return optax.chain(
      optax.add_decayed_weights(optimizer_config.weight_decay),
      optax.sgd(schedule, momentum=optimizer_config.momentum or None,
                nesterov=optimizer_config.nesterov))


def make_mesh(devices=None) -> jax.sharding.Mesh:
  """A 1-D ('data',) mesh over `devices` (all devices by default)."""
  devices = jax.devices() if devices is None else devices
  return jax.sharding.Mesh(np.asarray(devices), ('data',))


def replicated(mesh):
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())


def batch_sharded(mesh):
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data'))


def create_train_state(rng, model, tx, image_shape, mesh) -> TrainState:
  """Initialises parameters and optimiser state, replicated over `mesh`."""

  def init():
    variables = model.init({'params': rng, 'dropout': rng}, jnp.zeros((1, *image_shape)),
                           train=False)
    return TrainState.create(apply_fn=model.apply, params=variables['params'], tx=tx,
                             batch_stats=variables.get('batch_stats', {}))

  abstract = jax.eval_shape(init)
  return jax.jit(init, out_shardings=jax.tree.map(lambda _: replicated(mesh), abstract))()


def train_step(state: TrainState, train_metrics: metrics.Collection, batch, normalisation, rng,
               teacher_variables, *, data_config: ml_collections.ConfigDict,
               objective: objectives.Objective):
  """One SGD step on a global batch; returns the new state and the accumulated metrics.

  batch: {'image': uint8 [B, H, W, C], 'label': int32 [B]}, sharded along 'data'.
  teacher_variables: the frozen teacher's {'params', 'batch_stats'} (None without a teacher); it
  runs in inference mode and is neither differentiated nor returned.
  Augmentation and dropout draw from fold_in(rng, step), so a run is reproducible and resumes
  exactly.
  """
  augment_rng, dropout_rng = jax.random.split(jax.random.fold_in(rng, state.step))
  images = input_pipeline.augment(augment_rng, batch['image'], data_config.random_crop_padding,
                                  data_config.random_flip)
  images = input_pipeline.normalise(images, normalisation.mean, normalisation.std,
                                    normalisation.zca_matrix)

  labels = batch['label']
  targets = objective.teacher_targets(teacher_variables, images, labels)

  def loss_fn(params):
    (logits, aux), updates = state.apply_fn(
        {'params': params, 'batch_stats': state.batch_stats}, images, train=True,
        rngs={'dropout': dropout_rng}, mutable=['batch_stats'])

    def inference_loss(inputs):
      return objectives.cross_entropy(state.apply_fn(
          {'params': params, 'batch_stats': state.batch_stats}, inputs, train=False)[0], labels)

    loss, terms = objective(inference_loss, logits, aux, images, labels, targets, state.step)
    return loss, (logits, updates, terms)

  (loss, (logits, updates, terms)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params)
  state = state.apply_gradients(grads=grads, batch_stats=updates['batch_stats'])
  step_metrics = type(train_metrics).single_from_model_output(
      loss=loss, logits=logits, labels=labels, **terms)
  return state, train_metrics.merge(step_metrics)


def predict(state: TrainState, images, normalisation):
  """Inference-mode forward pass on uint8 images: (logits, aux)."""
  images = input_pipeline.normalise(images, normalisation.mean, normalisation.std,
                                    normalisation.zca_matrix)
  return state.apply_fn({'params': state.params, 'batch_stats': state.batch_stats}, images,
                        train=False)


def eval_step(state: TrainState, eval_metrics: EvalMetrics, batch, normalisation):
  """Accumulates test metrics over one padded batch; padding has mask 0 and is not counted."""
  logits, _ = predict(state, batch['image'], normalisation)
  top_k = min(5, logits.shape[-1])
  top5_correct = jnp.any(jax.lax.top_k(logits, top_k)[1] == batch['label'][:, None], axis=-1)
  step_metrics = EvalMetrics.single_from_model_output(
      loss=objectives.cross_entropy(logits, batch['label']), logits=logits, labels=batch['label'],
      top5_correct=top5_correct.astype(jnp.float32), mask=batch['mask'])
  return eval_metrics.merge(step_metrics)


class Trainer:
  """The jitted functions of one run, compiled once for fixed shapes and shardings."""

  def __init__(self, config: ml_collections.ConfigDict, mesh, objective: objectives.Objective):
    state_sharding, batch = replicated(mesh), batch_sharded(mesh)
    self.train_step = jax.jit(
        functools.partial(train_step, data_config=config.data, objective=objective),
        in_shardings=(state_sharding, state_sharding, batch, state_sharding, state_sharding,
                      state_sharding),
        out_shardings=(state_sharding, state_sharding), donate_argnums=(0, 1))
    self.eval_step = jax.jit(eval_step, out_shardings=state_sharding, donate_argnums=(1,))
    self.figure_maps = jax.jit(
        functools.partial(figure_maps, teacher_model=objective.teacher_model),
        in_shardings=state_sharding, out_shardings=state_sharding)
    self.mesh = mesh

  def to_global(self, local_batch):
    """Host-local numpy batch (this process's rows) -> global arrays sharded along 'data'."""
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(batch_sharded(self.mesh), x),
        local_batch)

  def evaluate(self, state, dataset, local_batch_size, normalisation) -> dict[str, float]:
    eval_metrics = jax.device_put(EvalMetrics.empty(), replicated(self.mesh))
    for batch in dataset.eval_batches(local_batch_size):
      eval_metrics = self.eval_step(state, eval_metrics, self.to_global(batch), normalisation)
    return {f'test_{name}': float(value) for name, value in eval_metrics.compute().items()}


def _activation_maps(group_activations):
  """Activation attention maps [B, h, w] (losses.activation_attention_map), one per point."""
  return [losses.activation_attention_map(a).reshape(a.shape[:3]) for a in group_activations]


def figure_maps(state, teacher_variables, images, normalisation, *, teacher_model=None):
  """The maps drawn in the attention figure, each [N, h, w].

  LTPA networks: their attention maps L1..Ln. Networks with transfer points: the student's
  activation attention map at each point, followed by the teacher's when there is a teacher
  (side by side: student 1, teacher 1, student 2, teacher 2, ...).
  """
  _, aux = predict(state, images, normalisation)
  if aux['attention_maps'] or not aux.get('group_activations'):
    return list(aux['attention_maps'])
  student = _activation_maps(aux['group_activations'])
  if teacher_model is None:
    return student
  inputs = input_pipeline.normalise(images, normalisation.mean, normalisation.std,
                                    normalisation.zca_matrix)
  teacher_groups = teacher_model.apply(teacher_variables, inputs,
                                       train=False)[1].get('group_activations', ())
  if len(teacher_groups) != len(student):  # e.g. a KD teacher without transfer points
    return student
  return [m for pair in zip(student, _activation_maps(teacher_groups)) for m in pair]


def load_dataset(data_config: ml_collections.ConfigDict):
  """`config.data`'s data set: streamed from disk (ImageNet) or held in host memory."""
  if data_config.name in input_pipeline.STREAMED:
    return streaming_input.load(data_config)
  return input_pipeline.load(data_config)


def _save_config(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> None:
  if jax.process_index() == 0:
    (workdir / 'config.json').write_text(config.to_json_best_effort(indent=2) + '\n')


def _resume(checkpointer, state, config):
  """Restores the latest checkpoint in the workdir, if any."""
  step = checkpointer.latest_step()
  if step is None:
    return state
  logging.info('Resuming from the checkpoint at step %d in %s.', step, checkpointer.directory)
  return checkpointer.restore(step, state, config)


def _load_teacher(config, mesh, student_model):
  """The frozen teacher of an attention-transfer run, checked against the student; else None."""
  if config.transfer.method not in objectives.TEACHER_METHODS:
    return None
  teacher = teacher_lib.load_teacher(config.teacher.workdir, mesh)
  teacher_lib.check_compatible(teacher, config, student_model)
  return teacher


def _num_transfer_points(model, image_shape) -> int:
  _, (_, aux) = models.abstract_variables_and_outputs(model, image_shape)
  return len(aux.get('group_activations', ()))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
                       mesh: jax.sharding.Mesh | None = None) -> tuple[TrainState, dict]:
  """Trains `config` in `workdir`, resuming from its latest checkpoint if there is one.

  Returns the final state and the last test metrics ({} if no evaluation ran).
  """
  mesh = mesh or make_mesh()
  validate_config(config, mesh.size)
  workdir = pathlib.Path(workdir)
  image_shape, num_classes = input_pipeline.image_shape_and_classes(config.data)
  model = models.create_model(config.model, num_classes, config.half_precision)
  teacher = _load_teacher(config, mesh, model)
  dataset = load_dataset(config.data)
  workdir.mkdir(parents=True, exist_ok=True)
  steps_per_epoch = dataset.num_train_examples // config.batch_size
  if steps_per_epoch == 0:
    raise ConfigError(f'config.batch_size={config.batch_size} is larger than the '
                      f'{dataset.num_train_examples} training examples.')
  num_train_steps = steps_per_epoch * config.num_epochs
  schedule = learning_rate_schedule(config.optimizer, steps_per_epoch, config.num_epochs)
  init_rng, train_rng = jax.random.split(jax.random.key(config.seed))
  state = create_train_state(init_rng, model, create_optimizer(config.optimizer, schedule),
                             image_shape, mesh)
  logging.info('Model %s: %s trainable parameters; %d steps of %d images (%d per epoch).',
               config.model.name, f'{models.count_parameters(state.params):,}', num_train_steps,
               config.batch_size, steps_per_epoch)
  checkpointer = checkpoints.Checkpointer(workdir / 'checkpoints', config.keep_checkpoints,
                                          config.keep_best_checkpoints)
  state = _resume(checkpointer, state, config)
  _save_config(config, workdir)
  objective = objectives.Objective(config.transfer, num_train_steps,
                                   teacher.model if teacher else None)
  loop = _TrainLoop(config, workdir, Trainer(config, mesh, objective), dataset, checkpointer,
                    schedule, steps_per_epoch,
                    teacher.variables if teacher else None,
                    train_metrics_class(objective.term_names(
                        _num_transfer_points(model, image_shape))))
  return loop.run(state, num_train_steps, train_rng)


@dataclasses.dataclass
class _TrainLoop:
  """Steps, logging, evaluation, figures and checkpoints of one run."""
  config: ml_collections.ConfigDict
  workdir: pathlib.Path
  trainer: Trainer
  dataset: input_pipeline.Dataset | streaming_input.StreamedDataset
  checkpointer: checkpoints.Checkpointer
  schedule: optax.Schedule
  steps_per_epoch: int
  teacher_variables: Any
  metrics_class: type[metrics.Collection]

  def __post_init__(self):
    dataset, config, workdir = self.dataset, self.config, self.workdir
    self.replicated = replicated(self.trainer.mesh)
    self.normalisation = jax.device_put(
        Normalisation(dataset.mean, dataset.std, dataset.zca_matrix), self.replicated)
    self.writer = metric_writers.create_default_writer(workdir,
                                                       just_logging=jax.process_index() > 0)
    # The same images on every process (process 0's first test images).
    self.figure_images = multihost_utils.broadcast_one_to_all(
        dataset.first_test_images(config.num_attention_images))

  def run(self, state, num_train_steps, train_rng):
    """Trains from `state.step` to `num_train_steps`; returns (state, last test metrics)."""
    config = self.config
    eval_every_steps = self.steps_per_epoch * config.eval_every_epochs
    report_progress = periodic_actions.ReportProgress(
        num_train_steps=num_train_steps, writer=self.writer, every_steps=config.log_every_steps,
        every_secs=60)
    initial_step = int(state.step)
    if initial_step >= num_train_steps:
      logging.info('%s already holds the final checkpoint (step %d); nothing to train.',
                   self.workdir, initial_step)
    batches = self.dataset.train_batches(config.batch_size // jax.process_count(), config.seed,
                                         start_step=initial_step)
    train_rng = jax.device_put(train_rng, self.replicated)
    train_metrics = jax.device_put(self.metrics_class.empty(), self.replicated)
    test_metrics, start = {}, time.time()
    try:
      for step in range(initial_step + 1, num_train_steps + 1):
        state, train_metrics = self.trainer.train_step(
            state, train_metrics, self.trainer.to_global(next(batches)), self.normalisation,
            train_rng, self.teacher_variables)
        report_progress(step)
        if step % config.log_every_steps == 0 or step % eval_every_steps == 0:
          scalars = {f'train_{name}': value for name, value in train_metrics.compute().items()}
          self.writer.write_scalars(step, {**scalars, 'learning_rate': self.schedule(step - 1)})
          train_metrics = jax.device_put(self.metrics_class.empty(), self.replicated)
        if step % eval_every_steps == 0 or step == num_train_steps:
          with report_progress.timed('eval'):
            test_metrics = self._evaluate(state, step, time.time() - start)
          with report_progress.timed('checkpoint'):
            self.checkpointer.save(step, state, config, test_metrics['test_accuracy'])
    except KeyboardInterrupt:
      if self.checkpointer.latest_step() != int(state.step):
        logging.warning('Interrupted at step %d: saving a checkpoint to resume from.',
                        int(state.step))
        self.checkpointer.save(int(state.step), state, config)
      raise
    finally:
      self.writer.flush()
      self.checkpointer.close()
    return state, test_metrics

  def _evaluate(self, state, step, seconds):
    """Test metrics and the attention figure at `step`."""
    test_metrics = self.trainer.evaluate(state, self.dataset,
                                         self.config.eval_batch_size // jax.process_count(),
                                         self.normalisation)
    self.writer.write_scalars(step, test_metrics)
    logging.info('Step %d (epoch %.1f, %.0f s): %s', step, step / self.steps_per_epoch, seconds,
                 json.dumps({name: round(value, 4) for name, value in test_metrics.items()}))
    if len(self.figure_images):
      maps = self.trainer.figure_maps(state, self.teacher_variables, self.figure_images,
                                      self.normalisation)
      if maps and jax.process_index() == 0:
        summaries.write_attention_figure(self.writer, self.workdir, step, self.figure_images,
                                         [np.asarray(m) for m in maps],
                                         self.config.model.get('normalisation', 'softmax'))
    return test_metrics
