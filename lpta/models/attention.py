"""The attention estimator of Learn To Pay Attention (Jetley et al., ICLR 2018).

Notation of the paper (§3): local features L^s = {l_1, ..., l_n} at one stage of the network, one
C-dim vector per spatial position (n = H·W), and the global feature g (the network's output just
before the classifier). Per position, a compatibility score c_i = C(l_i, g) is normalised over the
positions into an attention map a, which pools the local features into g_a.

Shapes follow Flax (NHWC): local features [B, H, W, C_l], global features [B, C_g].
"""

import functools
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from lpta.models import at_least_float32

COMPATIBILITIES = ('pc', 'dp')
NORMALISATIONS = ('softmax', 'sigmoid')
PROJECTIONS = ('g_down', 'l_up')


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def averaged_fan_out(x: jax.Array, copies: int) -> tuple[jax.Array, ...]:
  """`copies` copies of x whose backward pass AVERAGES their cotangents instead of summing them.

  The official Torch trainer of Learn To Pay Attention backpropagates by hand and averages the
  gradients at every junction (saumya-jetley/cd_ICLR18_LearnToPayAttention,
  VGGNet/Common_lua_source/main_AttLevel{2,3}_1global.lua): into g, the mean of what its n attention
  modules send back; into each tapped local feature map, ½·(the next block's + its attention
  module's). `model.junction_gradient_averaging` reproduces that with this function; the forward
  pass is unchanged.
  """
  return (x,) * copies


def _fan_out_forward(x, copies):
  return (x,) * copies, None


def _fan_out_backward(copies, residual, cotangents):
  del residual
  return (sum(cotangents) / copies,)


averaged_fan_out.defvjp(_fan_out_forward, _fan_out_backward)


class Attention(NamedTuple):
  """What one attention estimator returns.

  pooled: [B, C] the attention-pooled descriptor g_a (C = C_l for 'g_down', C_g for 'l_up').
  attention_map: [B, H, W] the normalised map a (float32, or float64 when computing in it).
  scores: [B, H, W] the raw compatibility scores c before normalisation (same dtype).
  """
  pooled: jax.Array
  attention_map: jax.Array
  scores: jax.Array


def parametrised_compatibility(local_features, global_features, use_bias, dtype):
  """'pc': c_i = <u, l_i + g> with a learned u (a 1×1 convolution to one channel).

  Args:
    local_features: [B, H, W, C].
    global_features: [B, C].
  Returns:
    [B, H, W] scores.
  """
  summed = local_features + global_features[:, None, None, :]
  scores = nn.Conv(1, (1, 1), use_bias=use_bias, dtype=dtype, name='u')(summed)
  return scores[..., 0]


def dot_product_compatibility(local_features, global_features):
  """'dp': c_i = <l_i, g>, no parameters. [B, H, W, C], [B, C] -> [B, H, W]."""
  return jnp.einsum('bhwc,bc->bhw', local_features, global_features)


def normalise_scores(scores, normalisation):
  """Turns scores [B, H, W] into an attention map [B, H, W] (at least float32).

  softmax: a_i = exp(c_i) / Σ_j exp(c_j) over the H·W positions of each example (paper eq. 2);
  sigmoid: a_i = σ(c_i), each position gated independently (the PyTorch port's alternative).
  """
  scores = at_least_float32(scores)
  if normalisation == 'softmax':
    batch, height, width = scores.shape
    flat = jax.nn.softmax(scores.reshape(batch, height * width), axis=-1)
    return flat.reshape(batch, height, width)
  return jax.nn.sigmoid(scores)


def pool_local_features(attention_map, local_features, normalisation):
  """g_a from the map and the local features: [B, H, W], [B, H, W, C] -> [B, C].

  softmax: g_a = Σ_i a_i · l_i (paper eq. 3, a convex combination);
  sigmoid: g_a = (1/n) Σ_i a_i · l_i (gating then global average pooling).
  """
  weights = attention_map.astype(local_features.dtype)
  pooled = jnp.einsum('bhw,bhwc->bc', weights, local_features)
  if normalisation == 'sigmoid':
    pooled = pooled / (attention_map.shape[1] * attention_map.shape[2])
  return pooled


class AttentionEstimator(nn.Module):
  """One attention level: scores, map and pooled descriptor from (L^s, g).

  When C_l ≠ C_g the widths are matched first, as chosen by `projection`:
    'g_down': ĝ = Dense(C_l)(Dropout(ReLU(BN(g)))), the official Torch code; g_a is C_l-dim.
    'l_up': l̂ = Conv1×1(C_g, no bias)(l), the PyTorch port; g_a is C_g-dim and pools l̂.

  Attributes:
    compatibility: 'pc' or 'dp'.
    normalisation: 'softmax' or 'sigmoid'.
    projection: 'g_down' or 'l_up' (used only when the widths differ).
    score_bias: whether u has a bias ('pc' only; irrelevant under softmax).
    dropout_rate: dropout before the 'g_down' projection.
    bn_epsilon: epsilon of the 'g_down' BatchNorm.
    dtype: computation dtype (parameters stay float32).
  """
  compatibility: str = 'pc'
  normalisation: str = 'softmax'
  projection: str = 'g_down'
  score_bias: bool = True
  dropout_rate: float = 0.5
  bn_epsilon: float = 1e-5
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, local_features, global_features, *, train: bool) -> Attention:
    local_features, global_features = self._match_widths(local_features, global_features, train)
    if self.compatibility == 'pc':
      scores = parametrised_compatibility(
          local_features, global_features, self.score_bias, self.dtype)
    else:
      scores = dot_product_compatibility(local_features, global_features)
    attention_map = normalise_scores(scores, self.normalisation)
    pooled = pool_local_features(attention_map, local_features, self.normalisation)
    return Attention(pooled, attention_map, at_least_float32(scores))

  def _match_widths(self, local_features, global_features, train):
    local_width, global_width = local_features.shape[-1], global_features.shape[-1]
    if local_width == global_width:
      return local_features, global_features
    if self.projection == 'l_up':
      projected = nn.Conv(global_width, (1, 1), use_bias=False, dtype=self.dtype,
                          name='project_local')(local_features)
      return projected, global_features
    hidden = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=self.bn_epsilon,
                          dtype=self.dtype, name='project_global_bn')(global_features)
    hidden = nn.Dropout(self.dropout_rate, deterministic=not train)(nn.relu(hidden))
    projected = nn.Dense(local_width, dtype=self.dtype, name='project_global')(hidden)
    return local_features, projected
