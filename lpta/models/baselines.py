"""Baselines of the glimpse tasks that see the whole image at once (RAM's Table 2, Mnih et al. 2014).

  MLP: the image, optionally average-pooled by `input_pool` (a low-resolution "context only"
    view), flattened, through ReLU hidden layers, to the classifier (RAM's "FC, 2 layers").
  ConvNet: ReLU convolutions of stride 2, a ReLU hidden layer and the classifier (lpta's
    convolutional baseline; the paper does not give its layers in full).
Both map images [B, H, W, C] to (logits [B, K], {}).
"""

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from lpta.models import at_least_float32


class MLP(nn.Module):
  """Fully connected network on the (pooled) image."""
  num_classes: int
  hidden_units: Sequence[int] = (256, 256)
  input_pool: int = 1
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images, *, train: bool):
    del train
    if self.input_pool > 1:
      window = (self.input_pool, self.input_pool)
      images = nn.avg_pool(images, window, strides=window, padding='VALID')
    x = images.reshape(images.shape[0], -1)
    for units in self.hidden_units:
      x = nn.relu(nn.Dense(units, dtype=self.dtype)(x))
    return at_least_float32(nn.Dense(self.num_classes, dtype=self.dtype)(x)), {}


class ConvNet(nn.Module):
  """Conv (kernel_size², stride 2, 'SAME') → ReLU per entry of `channels`, then a ReLU layer of
  `hidden_units` and the classifier."""
  num_classes: int
  channels: Sequence[int] = (16, 32)
  kernel_size: int = 5
  hidden_units: int = 256
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images, *, train: bool):
    del train
    x = images
    for features in self.channels:
      x = nn.relu(nn.Conv(features, (self.kernel_size, self.kernel_size), strides=(2, 2),
                          dtype=self.dtype)(x))
    x = nn.relu(nn.Dense(self.hidden_units, dtype=self.dtype)(x.reshape(x.shape[0], -1)))
    return at_least_float32(nn.Dense(self.num_classes, dtype=self.dtype)(x)), {}
