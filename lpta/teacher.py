"""Frozen teachers for attention transfer: a network restored from an earlier lpta run.

`config.teacher.workdir` names the workdir of that run. The teacher's architecture comes from the
config saved in its checkpoint. Only its `params` and `batch_stats` are read; it runs in inference
mode (BatchNorm running statistics), receives no gradient, and is never written to the student's
checkpoints.
"""

import pathlib
from typing import Any, NamedTuple

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from lpta import checkpoints
from lpta import input_pipeline
from lpta import losses
from lpta import models
from lpta import objectives
from lpta.errors import CheckpointError, ConfigError


class Teacher(NamedTuple):
  """model: the Flax module; variables: {'params', 'batch_stats'}; config: the teacher's run
  config; checkpoint: the directory and step it was restored from."""
  model: nn.Module
  variables: dict[str, Any]
  config: ml_collections.ConfigDict
  checkpoint: str


def load_teacher(workdir: str | pathlib.Path, mesh: jax.sharding.Mesh) -> Teacher:
  """Restores the latest checkpoint of the run in `workdir`, replicated over `mesh`."""
  directory = pathlib.Path(workdir) / 'checkpoints'
  checkpointer = checkpoints.Checkpointer(directory, read_only=True) if directory.is_dir() else None
  step = checkpointer and checkpointer.latest_step()
  if step is None:
    raise CheckpointError(
        f'config.teacher.workdir={workdir} holds no checkpoint; train the teacher there first '
        f'(python main.py --config=<teacher config> --workdir={workdir}).')
  teacher_config = ml_collections.ConfigDict(checkpointer.saved_config(step))
  image_shape, num_classes = input_pipeline.image_shape_and_classes(teacher_config.data)
  model = models.create_model(teacher_config.model, num_classes, teacher_config.half_precision)
  abstract, _ = models.abstract_variables_and_outputs(model, image_shape)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  targets = {name: jax.tree.map(lambda x: x.update(sharding=replicated), abstract[name])
             for name in ('params', 'batch_stats')}
  variables = checkpointer.restore_items(step, targets)['arrays']
  checkpointer.close()
  source = f'{directory}/{step}'
  logging.info('Restored the teacher %s (%s) from %s.', teacher_config.model.name,
               dict(teacher_config.model), source)
  return Teacher(model, variables, teacher_config, source)


def check_compatible(teacher: Teacher, config: ml_collections.ConfigDict,
                     student_model: nn.Module) -> None:
  """Refuses a teacher trained on another data set, or whose transfer points cannot match the
  student's for activation-based AT."""
  if teacher.config.data.name != config.data.name:
    raise ConfigError(
        f'the teacher in {teacher.checkpoint} was trained on {teacher.config.data.name} and the '
        f'student trains on {config.data.name}; use a teacher trained on the same data set.')
  if config.transfer.method not in objectives.ACTIVATION_METHODS:
    return
  image_shape, _ = input_pipeline.image_shape_and_classes(config.data)
  _, (_, student_aux) = models.abstract_variables_and_outputs(student_model, image_shape)
  teacher_aux = jax.eval_shape(
      lambda variables: teacher.model.apply(variables, jnp.zeros((1, *image_shape)),
                                            train=False)[1], teacher.variables)
  for who, aux, model_config in (('student', student_aux, config.model),
                                 ('teacher', teacher_aux, teacher.config.model)):
    if not aux.get('group_activations'):
      raise ConfigError(
          f'the {who} ({model_config.name}) has no transfer points for '
          f'config.transfer.method={config.transfer.method!r}; use a wrn or resnet {who}, or '
          'method kd or grad_at.')
  losses.check_matching_maps(student_aux['group_activations'], teacher_aux['group_activations'])
