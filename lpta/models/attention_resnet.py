"""RN-att2 of Learn To Pay Attention and its baseline, the pre-activation ResNet-164.

Both share the backbone of the official Torch code (saumya-jetley/cd_ICLR18_LearnToPayAttention,
RESNET/models/Resnet-att2, after He et al.'s "Identity Mappings in Deep Residual Networks"): for
a 32×32 input and depth 9n + 2 (n = 18 units per stage for ResNet-164),

| module | layers                                   | out channels (bottleneck) | output   |
|--------|------------------------------------------|---------------------------|----------|
| stem   | conv 3×3, 3 → 16                         | 16                        | 32×32×16 |
| stage1 | n bottleneck units, first stride 1       | 64 (16)                   | 32×32×64 |
| stage2 | n bottleneck units, first stride 2       | 128 (32)                  | 16×16×128 = l_a |
| stage3 | n bottleneck units, first stride 2       | 256 (64)                  | 8×8×256 = l_b |

A unit is pre-activated: BN → ReLU → conv 1×1 (stride) → BN → ReLU → conv 3×3 → BN → ReLU →
conv 1×1 to the output width, added to the shortcut. As in the official code (and He et al.'s
resnet-1k-layers it copies), the stride sits on the first 1×1 convolution, and the first unit of a
stage, where the shape changes, shares its first BN → ReLU with a 1×1 projection shortcut (stride
s): out = convs(ReLU(BN(x))) + proj(ReLU(BN(x))). Every other unit adds the raw input:
out = convs(x) + x. The stage outputs are these sums, never activated.

PreActivationResNet ('preact_resnet', the RN-164 baseline): stage3 → BN → ReLU → global average
pool → Dense. AttentionResNet ('attention_resnet', RN-att2): the global feature g from l_b,

  BN → ReLU → max-pool 2 (8→4) → conv 3×3 256→256 (bias) → BN → ReLU → Dropout .4
  → max-pool 4 (4→1) → flatten (256) → Dropout .5 → Dense 256 = g,

attention at l_a (g projected down to 128: BN → ReLU → Dropout .5 → Dense) and at l_b
(lpta.models.attention.AttentionEstimator), then each g_a → BN → ReLU → Dropout .3, concatenated
(128 + 256 = 384) → Dense → logits (lpta.models.vgg.attend_and_classify).

The backbone's and the global branch's convolutions have MSR initialisation N(0, 2/(k·k·C_out))
and no bias (but the global conv); their BatchNorm is Torch7's (momentum 0.1, epsilon 1e-5, scale
~ U(0, 1); the global conv's epsilon is 1e-3, as officially). The attention estimators and the
head are AttentionVGG's: epsilon 1e-5 as officially, but scale starting at 1 and Flax's default
Dense and u initialisation. The baseline's classifier is lpta.models.resnet.classifier. The
official trainer averages gradients at the branch points (RESNET/train_attenunit_2levels.lua); lpta
does so with `junction_gradient_averaging` (off by default: plain autodiff).
"""

import flax.linen as nn
import jax.numpy as jnp

from lpta.errors import ConfigError
from lpta.models import resnet
from lpta.models import vgg

STEM_WIDTH = 16
STAGE_WIDTHS = (64, 128, 256)
STAGE_STRIDES = (1, 2, 2)
ATTENTION_STAGES = (2, 3)  # l_a and l_b
TORCH_BN_EPSILON = 1e-5  # Torch7's default (resnet.batch_norm's too)
GLOBAL_CONV_BN_EPSILON = 1e-3  # the official global branch's conv
HEAD_DROPOUT = .3


def units_per_stage(depth: int, field: str = 'depth') -> int:
  """n of the ResNet-(9n+2); ConfigError naming `field` for any other depth."""
  if not isinstance(depth, int) or depth < 11 or (depth - 2) % 9:
    raise ConfigError(f'{field}={depth!r} is not a bottleneck ResNet depth: it must be 9n+2 with '
                      'n >= 1 units per stage (11, 20, 29, ..., 164 for ResNet-164).')
  return (depth - 2) // 9


def conv(features: int, kernel_size: int, stride: int, dtype, name: str,
         use_bias: bool = False) -> nn.Conv:
  """k×k convolution, MSR initialisation, Torch padding k // 2: [B, H, W, C] -> [B, ⌈H/s⌉,
  ⌈W/s⌉, features]."""
  return nn.Conv(features, (kernel_size, kernel_size), strides=stride, padding=kernel_size // 2,
                 use_bias=use_bias, kernel_init=vgg.conv_init, dtype=dtype, name=name)


class BottleneckUnit(nn.Module):
  """Pre-activation bottleneck unit: [B, H, W, C] -> [B, ⌈H/s⌉, ⌈W/s⌉, features] (module
  docstring); the bottleneck is features / 4 wide."""
  features: int
  stride: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool):
    bottleneck = max(1, self.features // resnet.BOTTLENECK_EXPANSION)
    preactivated = nn.relu(resnet.batch_norm(train, self.dtype, 'bn0')(x))
    y = conv(bottleneck, 1, self.stride, self.dtype, 'conv0')(preactivated)
    y = nn.relu(resnet.batch_norm(train, self.dtype, 'bn1')(y))
    y = conv(bottleneck, 3, 1, self.dtype, 'conv1')(y)
    y = nn.relu(resnet.batch_norm(train, self.dtype, 'bn2')(y))
    y = conv(self.features, 1, 1, self.dtype, 'conv2')(y)
    if x.shape[-1] != self.features or self.stride != 1:
      return y + conv(self.features, 1, self.stride, self.dtype, 'shortcut')(preactivated)
    return y + x


class Stage(nn.Module):
  """`num_units` units 'unit1'... to `features` channels, the first with `stride`."""
  num_units: int
  features: int
  stride: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool):
    for unit in range(1, self.num_units + 1):
      x = BottleneckUnit(self.features, self.stride if unit == 1 else 1, self.dtype,
                         name=f'unit{unit}')(x, train=train)
    return x


class Backbone(nn.Module):
  """Stem and the three stages: images [B, H, W, C] -> the stage outputs ([B, H, W, 64·w],
  [B, H/2, W/2, 128·w], [B, H/4, W/4, 256·w]) for the width multiplier w. The outputs of the
  `averaged_stages` branch off with averaged cotangents (lpta.models.vgg.junction)."""
  depth: int = 164
  width: float = 1.0
  averaged_stages: tuple[int, ...] = ()
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images, *, train: bool):
    num_units = units_per_stage(self.depth)
    x = conv(vgg.scale_width(STEM_WIDTH, self.width), 3, 1, self.dtype, 'stem')(
        images.astype(self.dtype))
    outputs = []
    for stage, (features, stride) in enumerate(zip(STAGE_WIDTHS, STAGE_STRIDES), start=1):
      x = Stage(num_units, vgg.scale_width(features, self.width), stride, self.dtype,
                name=f'stage{stage}')(x, train=train)
      x, output = vgg.junction(stage in self.averaged_stages)(x)
      outputs.append(output)
    return tuple(outputs)


class PreActivationResNet(nn.Module):
  """RN-164 (module docstring): [B, H, W, C] images -> (logits [B, num_classes], aux).

  aux has AttentionVGG's keys: empty attention tuples, 'global_features' the pooled [B, 256·w].

  Attributes:
    num_classes: size of the logits.
    depth: 9n + 2 (164: 18 units per stage).
    width: multiplier on every channel count (1.0 is the paper's network).
    dtype: computation dtype; parameters are always float32.
  """
  num_classes: int
  depth: int = 164
  width: float = 1.0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images, *, train: bool):
    *_, features = Backbone(self.depth, self.width, dtype=self.dtype, name='backbone')(
        images, train=train)
    features = nn.relu(resnet.batch_norm(train, self.dtype, 'head_bn')(features))
    aux = {'attention_maps': (), 'attention_scores': (), 'pooled_features': (),
           'global_features': jnp.mean(features, axis=(1, 2))}
    return resnet.classifier(features, self.num_classes, self.dtype), aux


class GlobalFeature(nn.Module):
  """The official global branch: l_b [B, h, w, C] -> g [B, C] (module docstring)."""
  dropout: bool = True
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, local_features, *, train: bool):
    width = local_features.shape[-1]
    x = nn.relu(resnet.batch_norm(train, self.dtype, 'bn0')(local_features))
    x = conv(width, 3, 1, self.dtype, 'conv', use_bias=True)(vgg.max_pool(x))
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9,
                             epsilon=GLOBAL_CONV_BN_EPSILON, scale_init=resnet.bn_scale_init,
                             dtype=self.dtype, name='bn1')(x))
    x = nn.Dropout(.4 if self.dropout else 0., deterministic=not train)(x)
    x = nn.max_pool(x, (4, 4), strides=(4, 4), padding='SAME')
    x = nn.Dropout(.5 if self.dropout else 0., deterministic=not train)(
        x.reshape(x.shape[0], -1))
    return nn.Dense(width, dtype=self.dtype, name='dense')(x)


class AttentionResNet(nn.Module):
  """(RN-att2)-{head}-{compatibility}: [B, H, W, C] images -> (logits [B, num_classes], aux).

  aux: 'attention_maps' and 'attention_scores' ([B, H/2, W/2] at l_a, [B, H/4, W/4] at l_b),
  'pooled_features' ([B, 128·w] (256·w with 'l_up'), [B, 256·w]) and 'global_features' g
  ([B, 256·w]).

  Attributes:
    num_classes: size of the logits.
    depth: 9n + 2 (164: 18 units per stage).
    compatibility, normalisation, projection, score_bias: of each AttentionEstimator.
    head: 'concat' (one Dense on [g_a^1, g_a^2], official) or 'indep' (one per level, summed).
    head_preactivation: BN → ReLU → Dropout .3 on each g_a before the head (official).
    dropout: the official dropout rates (global branch .4, .5; projection .5; head .3); False
      = none.
    width: multiplier on every channel count (1.0 is the paper's network).
    junction_gradient_averaging: backpropagate as the official trainer
      (RESNET/train_attenunit_2levels.lua):
      g's cotangent is the mean over the two attention modules, that of l_a and l_b ½·(next
      module's + attention module's). The forward pass is the same.
    dtype: computation dtype; parameters are always float32.
  """
  num_classes: int
  depth: int = 164
  compatibility: str = 'pc'
  normalisation: str = 'softmax'
  projection: str = 'g_down'
  score_bias: bool = True
  head: str = 'concat'
  head_preactivation: bool = True
  dropout: bool = True
  width: float = 1.0
  junction_gradient_averaging: bool = False
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images, *, train: bool):
    averaged = ATTENTION_STAGES if self.junction_gradient_averaging else ()
    stages = Backbone(self.depth, self.width, averaged, self.dtype, name='backbone')(
        images, train=train)
    global_features = GlobalFeature(self.dropout, self.dtype, name='global_branch')(
        stages[-1], train=train)
    return vgg.attend_and_classify(
        self, [stages[stage - 1] for stage in ATTENTION_STAGES], global_features, train,
        head_dropout=HEAD_DROPOUT, bn_epsilon=TORCH_BN_EPSILON)
