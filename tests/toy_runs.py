"""Runs built in memory for evaluator and map tests: any Flax module wrapped as a lpta Run.

A toy run has no checkpoint; its `workdir` is a temporary folder where evaluators write.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from lpta import families
from lpta import runs
from lpta.data import preprocessing


class ToyFamily(families.Family):
  """A family around a given module; not registered, so no config builds it."""
  name = 'toy'
  fields = {'toy': ()}

  def __init__(self, module: nn.Module, feature_layer: str | None = None, maps=None,
               figure_arrays_are_maps: bool = True):
    self.module = module
    self.feature_layer = feature_layer
    self.maps = maps  # aux key of learned maps [B, h, w] in [0, 1], or None
    self.figure_arrays_are_maps = figure_arrays_are_maps
    super().__init__(ml_collections.ConfigDict({'name': 'toy'}))

  def build(self, num_classes, dtype):
    return self.module

  def figure_arrays(self, aux):
    return (aux[self.maps],) if self.maps else ()


def toy_run(module: nn.Module, image_shape, num_classes: int, workdir, *, variables=None,
            feature_layer=None, maps=None, data_config=None) -> runs.Run:
  """A Run of `module` (initialised with key 0 unless `variables` are given) on pixels in
  [0, 1] (mean 0, std 1: the network sees the pixels as they are)."""
  if variables is None:
    variables = module.init(jax.random.key(0), jnp.zeros((1, *image_shape)), train=False)
  channels = image_shape[-1]
  config = ml_collections.ConfigDict({'model': {'name': 'toy'},
                                      'data': data_config or {'name': 'none'}})
  return runs.Run(
      checkpoint=f'{workdir}/checkpoints/0', step=0, config=config,
      family=ToyFamily(module, feature_layer, maps), model=module, variables=variables,
      normalisation=preprocessing.Normalisation(jnp.zeros(channels), jnp.ones(channels)),
      class_names=tuple(f'class{k}' for k in range(num_classes)), image_shape=tuple(image_shape))
