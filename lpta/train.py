"""Training and evaluation: one jitted step over a 1-D ('data',) device mesh.

The train state is replicated on every device and each batch is sharded along the mesh, so the
same code runs on one CPU, several GPUs and a multi-host TPU pod, and BatchNorm statistics are
computed over the global batch. Entry point: `train_and_evaluate(config, workdir)`.

The loop knows models, data and losses only through their interfaces: the model family
(lpta.families), the data source (lpta.data) and the objective (lpta.objectives).

The config's fields are declared beside the code that reads them (lpta.config_fields): the
top-level ones in FIELDS below, config.model by the model families, config.data by the data
sources, config.optimizer by lpta.optimizers, config.transfer and config.teacher by
lpta.objectives, config.init_from by lpta.fine_tuning, config.evals by lpta.evaluators;
`default_config()` assembles their defaults, which configs/common.py starts from.

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
from typing import Any

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
from lpta import config_fields as cf
from lpta import data
from lpta import evaluators
from lpta import families
from lpta import fine_tuning
from lpta import objectives
from lpta import optimizers
from lpta import runs
from lpta import sharding
from lpta import summaries
from lpta.data import preprocessing
from lpta.errors import CheckpointError, ConfigError, TrainingDiverged

# The top-level fields of a run's config.
FIELDS = (
    cf.Field('seed', 0, 'Drives initialisation, data order, augmentation and dropout: a run is a '
             'function of it.', cf.integer(0)),
    cf.Field('batch_size', 128, 'The global batch size, over all devices (divisible by their '
             'count).', cf.POSITIVE_INTEGER),
    cf.Field('eval_batch_size', 512, 'The global evaluation batch size (a power of two divides '
             'any device count up to itself).', cf.POSITIVE_INTEGER),
    cf.Field('num_epochs', 300, 'The length of training.', cf.POSITIVE_INTEGER),
    cf.Field('half_precision', False, 'bfloat16 computation with float32 parameters, optimiser '
             'state and BatchNorm statistics.', cf.BOOLEAN),
    cf.Field('eval_every_epochs', 1, 'Evaluate, write figures and checkpoint every this many '
             'epochs.', cf.POSITIVE_INTEGER),
    cf.Field('log_every_steps', 100, 'Write the training scalars (and check that the loss is '
             'finite) this often.', cf.POSITIVE_INTEGER),
    cf.Field('keep_checkpoints', 2, 'How many of the latest checkpoints are kept.',
             cf.POSITIVE_INTEGER),
    cf.Field('keep_best_checkpoints', 1, 'How many of the best by validation accuracy are kept '
             '(with a validation split only, config.data.validation_split).', cf.integer(0)),
    cf.Field('num_attention_images', 8, 'Test images in the attention figures; 0: none.',
             cf.integer(0)),
)


def default_config() -> ml_collections.ConfigDict:
  """Every field of a run at its default, `model` but its `name`; configs/common.py. Evaluators
  run during training are added as config.evals.<name> = {every_epochs, and any of the
  evaluator's fields} (lpta.evaluators.scheduled)."""
  config = cf.default_config(FIELDS)
  config.data = data.default_config()
  config.model = ml_collections.ConfigDict({'name': ml_collections.config_dict.placeholder(str)})
  config.optimizer = optimizers.default_config()
  config.evals = ml_collections.ConfigDict()
  config.transfer = cf.default_config(objectives.TRANSFER_FIELDS)
  config.teacher = cf.default_config(objectives.TEACHER_FIELDS)
  config.init_from = cf.default_config(fine_tuning.FIELDS)
  return config


def added_values() -> dict[str, Any]:
  """{'part.field': value} of every field that configs saved before it existed lack."""
  return cf.merge_added(data.added_values(), families.added_values(),
                        cf.added_values('optimizer', optimizers.FIELDS))


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
  cf.validated(config, FIELDS, 'config')
  family = families.get(config.model)
  source = data.get(config.data)
  objectives.validate(config)
  optimizers.validate(config.optimizer, family.parameter_group_names)
  for field in ('batch_size', 'eval_batch_size'):
    if config[field] % num_devices:
      raise ConfigError(
          f'config.{field}={config[field]} is not divisible by the {num_devices} devices; use '
          f'a multiple of {num_devices} (e.g. --config.{field}='
          f'{max(num_devices, config[field] // num_devices * num_devices)}).')
  evaluators.scheduled(config.evals, jax.process_count())
  fine_tuning.validate(config.init_from)
  return family, source


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
  model_inputs = family.model_inputs(batch, train_progress=state.step / num_train_steps)

  def loss_fn(params):
    variables = _model_variables(state, params)
    (logits, aux), updates = state.apply_fn(variables, normalisation(pixels), train=True,
                                            rngs=rngs, mutable=['batch_stats'], **model_inputs)

    def inference_loss(inputs):
      logits = state.apply_fn(variables, normalisation(inputs), train=False, rngs=rngs,
                              **model_inputs)[0]
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
    return state.apply_fn(variables, images, train=False, rngs=family.rngs(rng),
                          **family.model_inputs(batch), **kwargs)

  outputs = family.eval_outputs(
      predict, normalisation(preprocessing.to_unit_range(batch['image'])), batch, rng)
  return eval_metrics.merge(
      type(eval_metrics).single_from_model_output(**outputs, mask=batch['mask']))


def figure_arrays(state: TrainState, teacher_arrays, examples, normalisation, *,
                  family: families.Family, teacher: runs.Run | None):
  """(the student's figure arrays, the teacher's or ()) for examples {'image': uint8 [N, H, W,
  C], ...} (Dataset.first_examples)."""
  pixels = preprocessing.to_unit_range(examples['image'])
  _, aux = state.apply_fn(_model_variables(state, state.params), normalisation(pixels),
                          train=False, rngs=family.rngs(jax.random.key(0)),
                          **family.model_inputs(examples))
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


def _record_metrics(path: epath.Path, step: int, eval_metrics: dict[str, float]) -> None:
  """Adds the metrics of the evaluation at `step` to `path` ({step: {metric: value}}, JSON), the
  record of every evaluation of the run that needs no TensorBoard to read (lpta.study reads
  it)."""
  recorded = json.loads(path.read_text()) if path.exists() else {}
  recorded[str(step)] = eval_metrics
  path.write_text(json.dumps(recorded, indent=1) + '\n')


def _make_workdir(workdir: epath.Path) -> None:
  try:
    workdir.mkdir(parents=True, exist_ok=True)
  except OSError as error:
    raise ConfigError(f'cannot create --workdir={workdir} ({error.strerror or error}); choose a '
                      'folder you can write to.') from error


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


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: epath.PathLike,
                       mesh: jax.sharding.Mesh | None = None) -> tuple[TrainState, dict]:
  """Trains `config` in `workdir` (a path or URL), resuming from its latest checkpoint.

  Returns the final state and the last evaluation metrics ({} if no evaluation ran).
  """
  mesh = mesh or sharding.make_mesh()
  family, source = validate_config(config, mesh.size)
  workdir = epath.Path(workdir)
  checkpoints.check_workdir(workdir)
  checkpoints.refuse_incompatible_resume(workdir / 'checkpoints', config, added_values())
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
  schedule = optimizers.learning_rate_schedule(config.optimizer, steps_per_epoch,
                                               config.num_epochs)  # logged: the default group's
  init_rng, train_rng = jax.random.split(jax.random.key(config.seed))
  abstract_params = families.abstract_variables_and_outputs(model, source.image_shape)[0]['params']
  optimizer = optimizers.create_optimizer(config.optimizer, steps_per_epoch, config.num_epochs,
                                          family.parameter_groups(abstract_params))
  state = create_train_state(init_rng, model, optimizer, source.image_shape, mesh, family)
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
    state = checkpoints.resume(checkpointer, state, workdir / 'damaged_checkpoints')
  except CheckpointError:
    checkpointer.close()
    raise
  if jax.process_index() == 0:
    checkpoints.write_config_json(workdir, config)
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
    self.figure_examples = multihost_utils.broadcast_one_to_all(
        self.dataset.first_examples(self.config.num_attention_images))
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
        image_shape=tuple(self.dataset_info['image_shape']), version=checkpoints.lpta_version())
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
    if jax.process_index() == 0:
      _record_metrics(self.workdir / 'metrics.json', step, eval_metrics)
    logging.info('Step %d (epoch %.1f, %.0f s): %s', step, step / self.steps_per_epoch, seconds,
                 json.dumps({name: round(value, 4) for name, value in eval_metrics.items()}))
    if len(self.figure_examples['image']):
      arrays, teacher_arrays = self.trainer.figure_arrays(
          state, self.teacher_arrays, self._replicate(self.figure_examples), self.normalisation)
      if jax.process_index() == 0:
        grid = self.trainer.family.draw_figure(
            self.figure_examples['image'], [np.asarray(a) for a in arrays],
            [np.asarray(a) for a in teacher_arrays])
        if grid is not None:
          summaries.write_figure(self.writer, self.workdir, step, grid)
    return eval_metrics
