"""Runs that load anywhere: a trained network, its input statistics and its classes, from a workdir.

  run = lpta.load_run('runs/quickstart')            # or step='best', or a step number
  logits, aux = run.predict(images)                 # uint8 [N, H, W, C]

A checkpoint holds everything inference needs (lpta.checkpoints), so loading reads no data set
and, from a local workdir, imports neither TensorFlow nor TFDS (etils.epath reads gs:// URLs
through TensorFlow's tf.io.gfile). Teachers of attention transfer, lpta.predict and the
evaluators load runs this way.
"""

import dataclasses
import functools
from typing import Any

from etils import epath
import flax.linen as nn
import jax
import ml_collections

from lpta import checkpoints
from lpta import families
from lpta import sharding
from lpta.data import preprocessing
from lpta.errors import CheckpointError


@dataclasses.dataclass(frozen=True, eq=False)
class Run:
  """A trained network restored from a checkpoint.

  Attributes:
    checkpoint: the step folder it was restored from.
    step: the training step of that checkpoint.
    config: the run's config.
    family: its model family (lpta.families).
    model: the Flax module.
    variables: {'params'[, 'batch_stats']}, replicated over the mesh it was loaded on.
    normalisation: the input statistics fitted on its training split.
    class_names: one name per class.
    image_shape: (H, W, C) of the images it takes.
  """
  checkpoint: str
  step: int
  config: ml_collections.ConfigDict
  family: families.Family
  model: nn.Module
  variables: dict[str, Any]
  normalisation: preprocessing.Normalisation
  class_names: tuple[str, ...]
  image_shape: tuple[int, int, int]

  @property
  def workdir(self) -> str:
    """The run's workdir (where `checkpoints/` is)."""
    return str(epath.Path(self.checkpoint).parent.parent)

  @property
  def arrays(self) -> dict[str, Any]:
    """The run's arrays, to pass into a jitted function that calls `apply`."""
    return {'variables': self.variables, 'normalisation': self.normalisation}

  def apply(self, arrays: dict[str, Any], pixels: jax.Array, rng: jax.Array | None = None):
    """(logits [B, K], aux) in inference mode on pixels [B, H, W, C] in [0, 1]."""
    rngs = self.family.rngs(jax.random.key(0) if rng is None else rng)
    return self.model.apply(arrays['variables'], arrays['normalisation'](pixels), train=False,
                            rngs=rngs)

  @functools.cached_property
  def _jitted_predict(self):
    return jax.jit(lambda arrays, images: self.apply(arrays, preprocessing.to_unit_range(images)))

  def predict(self, images) -> tuple[jax.Array, dict[str, Any]]:
    """(logits [N, K], aux) for uint8 images [N, H, W, C] of `image_shape`."""
    if tuple(images.shape[1:]) != self.image_shape:
      raise ValueError(f'images of shape {tuple(images.shape[1:])} given to a run that takes '
                       f'{self.image_shape}; resize them first (lpta.predict does).')
    return self._jitted_predict(self.arrays, images)

  def abstract_transfer_points(self) -> tuple[jax.ShapeDtypeStruct, ...]:
    """The shapes of the family's transfer points for one image."""
    _, (_, aux) = families.abstract_variables_and_outputs(self.model, self.image_shape)
    return self.family.transfer_points(aux)


def load_run(workdir: epath.PathLike, step: str | int = 'latest',
             mesh: jax.sharding.Mesh | None = None) -> Run:
  """Restores the run in `workdir` (a path or URL) at `step`: 'latest', 'best' or a number.

  The arrays are replicated over `mesh` (default: every device). Only the network and its
  input statistics are read, never the optimiser state.

  Raises:
    CheckpointError: no such checkpoint, or one lpta cannot read.
  """
  directory = epath.Path(workdir) / 'checkpoints'
  if not directory.is_dir():
    raise CheckpointError(f'{workdir} holds no checkpoint; train a run there first '
                          f'(python main.py --config=<config> --workdir={workdir}).')
  checkpointer = checkpoints.Checkpointer(directory, read_only=True)
  try:
    return _restore(checkpointer, checkpointer.resolve_step(step), mesh or sharding.make_mesh())
  finally:
    checkpointer.close()


def _restore(checkpointer: checkpoints.Checkpointer, step: int, mesh) -> Run:
  if not checkpointer.has_item(step, 'dataset'):
    raise CheckpointError(f'{checkpointer.directory}/{step} has no input statistics (it was '
                          'written by an older lpta); train the run again to use it.')
  config = ml_collections.ConfigDict(checkpointer.read_json(step, 'config'))
  dataset = checkpointer.read_json(step, 'dataset')
  image_shape, class_names = tuple(dataset['image_shape']), tuple(dataset['class_names'])
  family = families.get(config.model)
  model = family.build(len(class_names), families.compute_dtype(config.half_precision))
  abstract, _ = families.abstract_variables_and_outputs(model, image_shape)
  replicated = sharding.replicated(mesh)
  targets = {name: jax.tree.map(lambda x: x.update(sharding=replicated), abstract[name])
             for name in ('params', 'batch_stats') if jax.tree.leaves(abstract.get(name, {}))}
  variables = checkpointer.restore_items(step, targets)
  normalisation = checkpoints.restore_normalisation(checkpointer, step, image_shape,
                                                    config.data.zca, replicated)
  return Run(checkpoint=f'{checkpointer.directory}/{step}', step=step, config=config,
             family=family, model=model, variables=variables, normalisation=normalisation,
             class_names=class_names, image_shape=image_shape)
