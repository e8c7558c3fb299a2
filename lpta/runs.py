"""Runs that load anywhere: a trained network, its input statistics and its classes, from a workdir.

  run = lpta.load_run('runs/quickstart')            # or step='best', or a step number
  logits, aux = run.predict(images)                 # uint8 [N, H, W, C], or floats in [0, 1]

A checkpoint holds everything inference needs (lpta.checkpoints), so loading reads no data set
and, from a local workdir, imports neither TensorFlow nor TFDS (etils.epath reads gs:// URLs
through TensorFlow's tf.io.gfile). Teachers of attention transfer, lpta.predict and the
evaluators load runs this way.
"""

import dataclasses
import functools
from typing import Any

from absl import logging
from etils import epath
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lpta import checkpoints
from lpta import families
from lpta import sharding
from lpta.data import preprocessing
from lpta.errors import CheckpointError


# Images per compiled batch of Run.predict by default: many on an accelerator; few on a CPU,
# where a larger batch is hardly faster per image, so that predicting a few images costs little
# more than their own computation.
PREDICT_BATCH_SIZE = 256
PREDICT_BATCH_SIZE_CPU = 8


def default_predict_batch_size() -> int:
  """PREDICT_BATCH_SIZE, or PREDICT_BATCH_SIZE_CPU where JAX computes on the CPU."""
  return PREDICT_BATCH_SIZE_CPU if jax.default_backend() == 'cpu' else PREDICT_BATCH_SIZE


def checked_images(images, image_shape) -> np.ndarray:
  """`images` as numpy arrays that Run.predict takes: uint8 [N, H, W, C] with (H, W, C) =
  `image_shape`, or floating-point ones (as float32) with every value in [0, 1]; ValueError,
  naming what was given and what is accepted, for anything else."""
  images = np.asarray(images)
  if images.ndim != 4:
    raise ValueError(f'images of shape {images.shape} given; a run takes a batch [N, H, W, C] of '
                     f'images {tuple(image_shape)} (one image: image[None]).')
  if tuple(images.shape[1:]) != tuple(image_shape):
    raise ValueError(f'images of shape {tuple(images.shape[1:])} given to a run that takes '
                     f'{tuple(image_shape)}; resize them first (lpta.predict does).')
  if images.dtype == np.uint8:
    return images
  if not jnp.issubdtype(images.dtype, jnp.floating):
    raise ValueError(f'images of dtype {images.dtype} given; a run takes uint8 images (0 to 255) '
                     'or floating-point ones with values in [0, 1].')
  pixels = images.astype(np.float32)
  if pixels.size and not np.all((pixels >= 0) & (pixels <= 1)):
    raise ValueError(f'{images.dtype} images with values from {np.nanmin(pixels):g} to '
                     f'{np.nanmax(pixels):g} given; floating-point images must be in [0, 1] '
                     '(divide 0-255 pixels by 255, or pass them as uint8).')
  return pixels


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
    version: {'lpta': the version, 'git_commit': the commit or None} that wrote the checkpoint
      (lpta.checkpoints.lpta_version), or None for a checkpoint written before lpta 0.3.0.
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
  version: dict[str, str | None] | None = None

  @property
  def workdir(self) -> str:
    """The run's workdir (where `checkpoints/` is)."""
    return str(epath.Path(self.checkpoint).parent.parent)

  def description(self) -> str:
    """'<model> from <checkpoint> (step N), trained on <data set> with lpta <version> (commit
    <commit>)'."""
    if self.version is None:
      written = 'by lpta before 0.3.0'
    else:
      commit = self.version.get('git_commit')
      written = f'with lpta {self.version["lpta"]}' + (f' (commit {commit})' if commit else '')
    return (f'{self.config.model.name} from {self.checkpoint} (step {self.step}), trained on '
            f'{self.config.data.name} {written}')

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
    def predict(arrays, images):
      pixels = preprocessing.to_unit_range(images) if images.dtype == jnp.uint8 else images
      return self.apply(arrays, pixels)
    return jax.jit(predict)

  def predict(self, images, batch_size: int | None = None) -> tuple[jax.Array, dict[str, Any]]:
    """(logits [N, K], aux) of images [N, H, W, C] of `image_shape`: uint8 (0 to 255), or
    floating-point pixels in [0, 1].

    The images go through in batches of `batch_size` (default: default_predict_batch_size()),
    the last one padded, so that one compiled program (per input dtype) serves any N; the
    outputs are those of the N images.

    Raises:
      ValueError: another shape or dtype, or floating-point values outside [0, 1].
    """
    images = checked_images(images, self.image_shape)
    batch_size = default_predict_batch_size() if batch_size is None else batch_size
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
      raise ValueError(f'batch_size={batch_size!r} must be a positive integer.')
    count = len(images)
    outputs = []
    for start in range(0, max(count, 1), batch_size):
      batch = images[start:start + batch_size]
      padding = np.zeros((batch_size - len(batch), *self.image_shape), batch.dtype)
      outputs.append(self._jitted_predict(self.arrays, np.concatenate([batch, padding])))
    if len(outputs) == 1:
      return jax.tree.map(lambda output: output[:count], outputs[0])
    return jax.tree.map(lambda *parts: jnp.concatenate(parts)[:count], *outputs)

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
  version = (checkpointer.read_json(step, 'version') if checkpointer.has_item(step, 'version')
             else None)
  run = Run(checkpoint=f'{checkpointer.directory}/{step}', step=step, config=config,
            family=family, model=model, variables=variables, normalisation=normalisation,
            class_names=class_names, image_shape=image_shape, version=version)
  logging.info('Loaded %s.', run.description())
  return run
