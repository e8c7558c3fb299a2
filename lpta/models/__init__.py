"""Flax modules: the attention estimator, VGGs (vgg.py) and residual networks (resnet.py).

Which module a config builds, and how it is trained and drawn, is decided by its family
(lpta.families).
"""

import jax.numpy as jnp


def at_least_float32(x):
  """x in float32, or in its own dtype if that is wider: bfloat16 computations give float32
  logits and attention maps, float64 ones (tests of device-count invariance) stay float64."""
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))
