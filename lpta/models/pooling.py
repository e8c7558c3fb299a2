"""2×2 max-pooling with the gradient of `reduce_window`, without the scatter XLA:CPU makes of it.

`flax.linen.max_pool` is `lax.reduce_window`; its gradient is `select_and_scatter`, which XLA:CPU
lowers to an iota, a concatenation of 4-d indices and a scatter: with the forward pool, about a
seventh of the quickstart's train step on 2 CPU cores. Here the four positions of each window are
four strided slices, so the forward pass and its gradient are elementwise fusions.

The gradient is the same function as `select_and_scatter`'s (and PyTorch's `max_pool2d`'s): each
window's output gradient goes to the *first* of its maxima in row-major order (top-left, top-right,
bottom-left, bottom-right), the others get zero. A plain `jnp.maximum` tree would split it between
tied maxima instead, and ties are common after ReLU (zeros). tests/test_models.py checks forward
and gradient equal to `flax.linen.max_pool`'s bit for bit on inputs full of ties.
"""

import jax
import jax.numpy as jnp


def _windows(x: jax.Array) -> list[jax.Array]:
  """The four positions of each 2×2 window, [B, ⌈H/2⌉, ⌈W/2⌉, C] each, in row-major order.

  Odd sizes are padded at the bottom and right with -inf ('SAME' padding, ceil rounding).
  """
  _, height, width, _ = x.shape
  x = jnp.pad(x, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), constant_values=-jnp.inf)
  return [x[:, row::2, column::2] for row in (0, 1) for column in (0, 1)]


@jax.custom_vjp
def max_pool_2x2(x: jax.Array) -> jax.Array:
  """2×2 max-pool, stride 2, ceil rounding. [B, H, W, C] -> [B, ⌈H/2⌉, ⌈W/2⌉, C]."""
  top_left, top_right, bottom_left, bottom_right = _windows(x)
  return jnp.maximum(jnp.maximum(top_left, top_right), jnp.maximum(bottom_left, bottom_right))


def _forward(x):
  pooled = max_pool_2x2(x)
  return pooled, (x, pooled)


def _backward(residuals, pooled_gradient):
  """dL/dx: each window's gradient at its first maximum. [B, H, W, C]."""
  x, pooled = residuals
  batch, height, width, channels = x.shape
  already_routed = jnp.zeros(pooled.shape, bool)
  gradients = []
  for position in _windows(x):
    first_maximum = (position == pooled) & ~already_routed
    gradients.append(jnp.where(first_maximum, pooled_gradient, 0))
    already_routed |= first_maximum
  pooled_height, pooled_width = pooled.shape[1:3]
  # [B, h, w, 4, C] -> [B, h, 2, w, 2, C] -> [B, 2h, 2w, C], then the padding cut off.
  interleaved = (jnp.stack(gradients, axis=3)
                 .reshape(batch, pooled_height, pooled_width, 2, 2, channels)
                 .transpose(0, 1, 3, 2, 4, 5)
                 .reshape(batch, 2 * pooled_height, 2 * pooled_width, channels))
  return (interleaved[:, :height, :width],)


max_pool_2x2.defvjp(_forward, _backward)
