"""VGG networks of Learn To Pay Attention: the attention network and the plain baseline.

The attention network follows the official Torch layout for 32×32 inputs
(saumya-jetley/cd_ICLR18_LearnToPayAttention, VGGNet/models/models_CIFARS/3_level_atten_1global):
VGG-16's 13 convolutions with the first two max-pools removed, two extra convolutions, and a
linear layer "FC-1" whose output is the global feature g. Local features are taken at convs 7, 10
and 13 (32², 16², 8² for a 32×32 input), before or after the max-pool that follows them.

| conv | channels | official dropout | then            |
|------|----------|------------------|-----------------|
| 1–7  | 64, 64, 128, 128, 256, 256, 256 | .3, –, .4, –, .4, .4, – | L1 = conv 7; pool |
| 8–10 | 512 ×3   | .4, .4, –        | L2 = conv 10; pool |
| 11–13| 512 ×3   | .4, .4, –        | L3 = conv 13; pool |
| 14   | 512      | .4               | pool |
| 15   | 512      | .4               | pool, flatten, Dropout .5, Dense 512 = g |

Every convolution is 3×3 with bias, then BatchNorm, ReLU and (optionally) dropout. Max-pools are
2×2 with ceil rounding ('SAME'), so odd sizes such as 28 → 14 → 7 → 4 → 2 → 1 work; the first
one may be larger (`first_pool_size`, 5 for CUB's 80×80 crops).
"""

import functools
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from lpta.models import at_least_float32
from lpta.models.attention import AttentionEstimator, averaged_fan_out

# (output channels, official dropout rate) of VGG-16's 13 convolutions, then the attention
# network's two extra ones.
VGG16_CONVS = ((64, .3), (64, 0.), (128, .4), (128, 0.), (256, .4), (256, .4), (256, 0.),
               (512, .4), (512, .4), (512, 0.), (512, .4), (512, .4), (512, 0.))
EXTRA_CONVS = ((512, .4), (512, .4))
# 1-based indices of the convolutions whose outputs are the local features L1, L2, L3.
LOCAL_FEATURE_CONVS = (7, 10, 13)
ATTENTION_POOLS_AFTER = (7, 10, 13, 14, 15)
BASELINE_POOLS_AFTER = (2, 4, 7, 10, 13)
GLOBAL_WIDTH = 512
PLACEMENTS = ('before', 'after')
HEADS = ('concat', 'indep')

# MSR initialisation of the official code: N(0, 2 / (k·k·C_out)).
conv_init = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')


def scale_width(channels: int, width: float) -> int:
  """Channels of a layer under the width multiplier (at least one)."""
  return max(1, int(round(channels * width)))


def max_pool(x, size: int = 2):
  """size×size max-pool, stride size, ceil rounding. [B, H, W, C] -> [B, ⌈H/s⌉, ⌈W/s⌉, C]."""
  return nn.max_pool(x, (size, size), strides=(size, size), padding='SAME')


class ConvBlock(nn.Module):
  """conv 3×3 (with bias) → BatchNorm → ReLU → Dropout. [B, H, W, C] -> [B, H, W, features]."""
  features: int
  dropout_rate: float
  bn_epsilon: float
  dtype: jnp.dtype

  @nn.compact
  def __call__(self, x, *, train: bool):
    x = nn.Conv(self.features, (3, 3), padding=1, kernel_init=conv_init, dtype=self.dtype)(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=self.bn_epsilon,
                     dtype=self.dtype)(x)
    x = nn.relu(x)
    if self.dropout_rate:
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return x


class ConvStack(nn.Module):
  """The convolutions of a VGG, with max-pools after the given ones.

  Returns the final features and, for each conv listed in `taps`, its output before or after the
  pool that follows it ({conv index: [B, h, w, c]}).
  """
  convs: Sequence[tuple[int, float]]
  pools_after: Sequence[int]
  taps: Sequence[int] = ()
  tap_after_pool: bool = False
  dropout: bool = True
  width: float = 1.0
  bn_epsilon: float = 1e-5
  average_junctions: bool = False  # average the cotangents where a tapped map branches off
  first_pool_size: int = 2  # side and stride of the first max-pool; the others are 2
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool):
    blocks = [functools.partial(
        ConvBlock(scale_width(channels, self.width), rate if self.dropout else 0.,
                  self.bn_epsilon, self.dtype, name=f'conv{index}'), train=train)
              for index, (channels, rate) in enumerate(self.convs, start=1)]
    first = min(self.pools_after)
    pool = lambda features, index: max_pool(features,
                                            self.first_pool_size if index == first else 2)
    return run_stack(blocks, x, self.pools_after, self.taps, self.tap_after_pool, pool,
                     junction(self.average_junctions))


def run_stack(blocks, x, pools_after, taps, tap_after_pool: bool, pool, branch=lambda x: (x, x)):
  """Applies conv blocks 1, 2, ... in turn, `pool(x, index)` after those in `pools_after`; returns the
  final features and {conv index: its output before or after that pool} for the `taps`. At a
  tap, `branch(x)` gives (what the stack goes on with, what is tapped): the same array, or two
  whose cotangents are averaged (`junction_gradient_averaging`). Framework-free: the PyTorch
  twins (lpta.pytorch_equivalents) walk their stack with it too."""
  tapped = {}
  for index, block in enumerate(blocks, start=1):
    x = block(x)
    if index in taps and not tap_after_pool:
      x, tapped[index] = branch(x)
    if index in pools_after:
      x = pool(x, index)
    if index in taps and tap_after_pool:
      x, tapped[index] = branch(x)
  return x, tapped


def junction(average: bool):
  """The `branch` of run_stack: averaged_fan_out(x, 2) with `average`, else (x, x)."""
  return (lambda x: averaged_fan_out(x, 2)) if average else (lambda x: (x, x))


def attend_and_classify(module: nn.Module, local_features, global_features, train: bool, *,
                        head_dropout: float, bn_epsilon: float):
  """The LTPA network after its backbone; call it inside `module`'s compact method.

  One AttentionEstimator 'attention{s}' per local feature map l^s [B, h_s, w_s, c_s] with
  `module`'s compatibility, normalisation, projection and score_bias (dropout .5 before a
  'g_down' projection), then the classifier on the g_a^s [B, c_s] (on g [B, C_g] when there are
  no maps): with `module.head_preactivation`, BatchNorm 'head_bn{s}' → ReLU → Dropout
  `head_dropout` on each first; 'concat' is one Dense 'classifier' on their concatenation,
  'indep' one Dense 'classifier{s}' each, the logits summed (the official 3-level code). The
  dropout rates are 0 without `module.dropout`. With `module.junction_gradient_averaging`, g's
  cotangent is the mean, not the sum, of what the attention modules send back (as the official
  VGGNet/Common_lua_source/main_AttLevel{2,3}_1global.lua).

  Returns (logits [B, module.num_classes], aux) with aux as AttentionVGG's.
  """
  copies = len(local_features)
  global_copies = (averaged_fan_out(global_features, copies)
                   if module.junction_gradient_averaging and copies else (global_features,) * copies)
  attentions = [
      AttentionEstimator(module.compatibility, module.normalisation, module.projection,
                         module.score_bias, .5 if module.dropout else 0., bn_epsilon,
                         module.dtype, name=f'attention{level}')(local, g, train=train)
      for level, (local, g) in enumerate(zip(local_features, global_copies), start=1)]
  pooled = [attention.pooled for attention in attentions] or [global_features]
  descriptors = pooled
  if attentions and module.head_preactivation:
    descriptors = [nn.Dropout(head_dropout if module.dropout else 0., deterministic=not train)(
        nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=bn_epsilon,
                             dtype=module.dtype, name=f'head_bn{level}')(descriptor)))
                   for level, descriptor in enumerate(pooled, start=1)]
  if module.head == 'concat':
    logits = nn.Dense(module.num_classes, dtype=module.dtype, name='classifier')(
        jnp.concatenate(descriptors, axis=-1))
  else:
    logits = sum(nn.Dense(module.num_classes, dtype=module.dtype, name=f'classifier{level}')(
        descriptor) for level, descriptor in enumerate(descriptors, start=1))
  aux = {
      'attention_maps': tuple(attention.attention_map for attention in attentions),
      'attention_scores': tuple(attention.scores for attention in attentions),
      'pooled_features': tuple(pooled),
      'global_features': global_features,
  }
  return at_least_float32(logits), aux


class AttentionVGG(nn.Module):
  """(VGG-att{n})-{head}-{compatibility}: the LTPA network; n = 0 is the plain backbone + linear.

  Attributes:
    num_classes: size of the logits.
    num_levels: 1, 2 or 3 attention levels (att1 = L3; att2 = L2, L3; att3 = L1, L2, L3), or 0
      for no attention (a linear classifier on g, the PyTorch port's --no_attention).
    compatibility, normalisation, projection, score_bias: of each AttentionEstimator.
    placement: 'before' or 'after' pooling: where the local features are tapped.
    head: 'concat' (one linear layer on [g_a^1, ..., g_a^n]) or 'indep' (one linear layer per
      g_a^s; the logits are summed, as in the official 3-level code).
    head_preactivation: BatchNorm → ReLU → Dropout .5 on each g_a before the head (official).
    dropout: the official dropout rates in the backbone, FC-1 and projections; False = none.
    width: multiplier on every channel count (0.25 gives a small, fast network).
    bn_epsilon: 1e-3 in the official code, 1e-5 in the PyTorch port.
    junction_gradient_averaging: backpropagate as the official Torch trainer does
      (VGGNet/Common_lua_source/main_AttLevel{2,3}_1global.lua): the cotangent of g is the mean
      over the attention modules, that of each tapped local feature map ½·(next block's + its
      attention module's). The forward pass is the same.
    first_pool_size: side and stride of the max-pool after conv 7 (2; 5 for CUB's 80×80 crops,
      as in the official CUB network, so that conv 8 onwards sees the 32×32 network's sizes:
      80 → 16 → 8 → 4 → 2 → 1).
    dtype: computation dtype; parameters are always float32.
  """
  num_classes: int
  num_levels: int = 3
  compatibility: str = 'pc'
  normalisation: str = 'softmax'
  projection: str = 'g_down'
  score_bias: bool = True
  placement: str = 'before'
  head: str = 'concat'
  head_preactivation: bool = True
  dropout: bool = True
  width: float = 1.0
  bn_epsilon: float = 1e-3
  junction_gradient_averaging: bool = False
  first_pool_size: int = 2
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images, *, train: bool):
    """[B, H, W, C] images -> (logits [B, num_classes], aux).

    aux: 'attention_maps' and 'attention_scores' (tuples of [B, h_s, w_s], one per level, L1
    first), 'pooled_features' (tuple of [B, c_s]) and 'global_features' ([B, 512·width]).
    """
    taps = LOCAL_FEATURE_CONVS[len(LOCAL_FEATURE_CONVS) - self.num_levels:]
    features, local_features = ConvStack(
        VGG16_CONVS + EXTRA_CONVS, ATTENTION_POOLS_AFTER, taps,
        tap_after_pool=self.placement == 'after', dropout=self.dropout, width=self.width,
        bn_epsilon=self.bn_epsilon, average_junctions=self.junction_gradient_averaging,
        first_pool_size=self.first_pool_size, dtype=self.dtype, name='backbone')(
            images.astype(self.dtype), train=train)
    flat = features.reshape(features.shape[0], -1)
    if self.dropout:
      flat = nn.Dropout(.5, deterministic=not train)(flat)
    global_features = nn.Dense(scale_width(GLOBAL_WIDTH, self.width), dtype=self.dtype,
                               name='global')(flat)
    return attend_and_classify(self, [local_features[tap] for tap in taps], global_features,
                               train, head_dropout=.5, bn_epsilon=self.bn_epsilon)


class VGG(nn.Module):
  """The baseline VGG-16 of the paper's tables (cifar.torch's vgg_bn_drop): all five pools,
  then Dropout .5 → Dense 512 → BN → ReLU → Dropout .5 → Dense num_classes.

  Same call signature as AttentionVGG; aux holds empty attention tuples. `first_pool_size`: side
  and stride of the pool after conv 2 (5 for 80×80 CUB crops: 80 → 16 → 8 → 4 → 2 → 1).
  """
  num_classes: int
  dropout: bool = True
  width: float = 1.0
  bn_epsilon: float = 1e-3
  first_pool_size: int = 2
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images, *, train: bool):
    features, _ = ConvStack(VGG16_CONVS, BASELINE_POOLS_AFTER, dropout=self.dropout,
                            width=self.width, bn_epsilon=self.bn_epsilon,
                            first_pool_size=self.first_pool_size, dtype=self.dtype,
                            name='backbone')(images.astype(self.dtype), train=train)
    rate = .5 if self.dropout else 0.
    hidden = nn.Dropout(rate, deterministic=not train)(features.reshape(features.shape[0], -1))
    hidden = nn.Dense(scale_width(GLOBAL_WIDTH, self.width), dtype=self.dtype)(hidden)
    hidden = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=self.bn_epsilon,
                          dtype=self.dtype)(hidden)
    hidden = nn.Dropout(rate, deterministic=not train)(nn.relu(hidden))
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name='classifier')(hidden)
    aux = {'attention_maps': (), 'attention_scores': (), 'pooled_features': (),
           'global_features': hidden}
    return at_least_float32(logits), aux
