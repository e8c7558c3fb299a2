"""Residual networks of Attention Transfer (Zagoruyko & Komodakis, ICLR 2017; the authors' code is
szagoruyko/attention-transfer).

WideResNet is the CIFAR WRN-d-k of the AT code (cifar.py, `resnet`): a 3×3 stem conv to 16
channels, three groups of n = (d − 4)/6 pre-activation basic blocks with widths ⌊16k⌋, ⌊32k⌋,
⌊64k⌋ and strides 1, 2, 2, then BatchNorm → ReLU → global average pool → Dense.

ResNet is the ImageNet ResNet-18/34/50 (the AT code's imagenet.py, torchvision layout): 7×7/2 stem
conv → BN → ReLU → 3×3/2 max-pool, four groups of post-activation blocks with widths 64, 128, 256,
512 and strides 1, 2, 2, 2, then global average pool → Dense. ResNet-18/34 use basic blocks;
ResNet-50 uses bottleneck blocks (1×1, 3×3 with the stride, 1×1 to 4× the width: torchvision's
"v1.5"). The stem's kernel and stride are attributes: the fine-grained glimpse model's trunk uses a
5×5 stride-1 stem for 96×96 glimpses (rohithreddy024/Visual-Attention-Pytorch, models.py).

ResNet(preactivation=True) is the pre-activation ImageNet ResNet-18/34 of the AT paper's released
ResNet-18 student (functional-zoo's resnet-18-at-export, trained in fb.resnet.torch; released in the
AT code's README): the same stem, basic PreActivationBlocks (the WRN's), and BN → ReLU before the
pool and Dense. The stem's BN → ReLU (then the max-pool) is the first block's pre-activation, so
group0_block0 has no BN of its own. For a 224² image:

  stem            conv 7×7/2, 3 → 64, BN, ReLU, max-pool 3×3/2     [B, 56, 56, 64]
  group0 (×n0)    ReLU(BN(x)) → conv 3×3 → ReLU(BN) → conv 3×3, + x [B, 56, 56, 64]
                  (block 0: x itself is the input of conv0, no BN)
  group1..3       block 0: o1 = ReLU(BN(x)); conv 3×3/2 on o1; ReLU(BN); conv 3×3;
                  + conv 1×1/2 (shortcut) on o1;  blocks 1..: as in group 0
                                  [B, 28, 28, 128], [B, 14, 14, 256], [B, 7, 7, 512]
  head            BN, ReLU, global average pool, Dense              [B, num_classes]

with n = (2, 2, 2, 2) blocks per group for ResNet-18 (11,687,720 parameters at 1000 classes:
BatchNorm scale and shift, no conv biases), (3, 4, 6, 3) for ResNet-34.

Attention is transferred at the group outputs, returned as aux['group_activations']. Convolutions
have no bias and pad like PyTorch (k // 2 on each side, also for stride 2). Initialisation follows
the AT code for both networks: convolutions and the classifier kaiming-normal over fan-in,
BatchNorm scale U(0, 1) (Torch7 style) and zero shift, zero classifier bias.
"""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from lpta.errors import ConfigError
from lpta.models import at_least_float32

WRN_STEM_WIDTH = 16
WRN_GROUP_WIDTHS = (16, 32, 64)
WRN_GROUP_STRIDES = (1, 2, 2)
RESNET_STEM_WIDTH = 64
RESNET_GROUP_WIDTHS = (64, 128, 256, 512)
RESNET_STAGE_SIZES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}
RESNET_BOTTLENECK_DEPTHS = (50,)  # the others use basic blocks
BOTTLENECK_EXPANSION = 4  # a bottleneck block's output is 4× its width

kaiming_normal = nn.initializers.variance_scaling(2.0, 'fan_in', 'normal')
bn_scale_init = nn.initializers.uniform(1.0)


def wrn_blocks_per_group(depth: int, field: str = 'depth') -> int:
  """n of WRN-(6n+4)-k; ConfigError naming `field` for any other depth."""
  if not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
    raise ConfigError(f'{field}={depth!r} is not a wide-ResNet depth: it must be 6n+4 with '
                      'n >= 1 blocks per group (10, 16, 22, 28, 40, ...).')
  return (depth - 4) // 6


def wrn_group_widths(widen_factor: float, field: str = 'widen_factor') -> tuple[int, ...]:
  """(⌊16k⌋, ⌊32k⌋, ⌊64k⌋); ConfigError naming `field` if the first would be empty (k < 1/16)."""
  if not widen_factor >= 1 / WRN_GROUP_WIDTHS[0]:
    raise ConfigError(f'{field}={widen_factor!r} is too small: the widen factor k must be at '
                      'least 1/16 so that every group has a channel (1 and 2 are the paper\'s).')
  return tuple(int(width * widen_factor) for width in WRN_GROUP_WIDTHS)


def check_preactivation(preactivation, bottleneck: bool, field: str = 'preactivation') -> None:
  """ConfigError naming `field` unless `preactivation` is a bool, and False for bottleneck
  blocks (lpta's are post-activation only)."""
  if not isinstance(preactivation, bool):
    raise ConfigError(f'{field}={preactivation!r} must be True (pre-activation blocks) or False '
                      '(post-activation, torchvision\'s layout).')
  if preactivation and bottleneck:
    raise ConfigError(f'{field}=True is for the basic-block ResNet-18 and ResNet-34; the '
                      'bottleneck ResNet-50 is post-activation only.')


def conv(features: int, kernel_size: int, stride: int, dtype, name: str) -> nn.Conv:
  """k×k convolution without bias, PyTorch padding k // 2: [B, H, W, C] -> [B, ⌈H/s⌉, ⌈W/s⌉, F]."""
  return nn.Conv(features, (kernel_size, kernel_size), strides=stride, padding=kernel_size // 2,
                 use_bias=False, kernel_init=kaiming_normal, dtype=dtype, name=name)


def batch_norm(train: bool, dtype, name: str) -> nn.BatchNorm:
  """BatchNorm with PyTorch's momentum 0.1 (Flax 0.9) and epsilon 1e-5, scale ~ U(0, 1)."""
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                      scale_init=bn_scale_init, dtype=dtype, name=name)


def classifier(features, num_classes: int, dtype):
  """Global average pool and Dense: [B, h, w, C] -> logits [B, num_classes], at least float32."""
  logits = nn.Dense(num_classes, kernel_init=kaiming_normal, dtype=dtype, name='classifier')(
      jnp.mean(features, axis=(1, 2)))
  return at_least_float32(logits)


class PreActivationBlock(nn.Module):
  """WRN basic block (also the pre-activation ResNet's): [B, H, W, C] -> [B, ⌈H/s⌉, ⌈W/s⌉,
  features].

  o1 = ReLU(BN(x)); y = conv3×3(o1, stride s); o2 = ReLU(BN(y)); z = conv3×3(o2);
  out = z + conv1×1(o1, stride s) where the shape changes, else z + x. No dropout.
  With `activated_input` (x is already BN → ReLU-activated: the ImageNet stem's output) o1 = x
  and the block has no first BN (bn0).
  """
  features: int
  stride: int
  dtype: jnp.dtype = jnp.float32
  activated_input: bool = False

  @nn.compact
  def __call__(self, x, *, train: bool):
    o1 = x if self.activated_input else nn.relu(batch_norm(train, self.dtype, 'bn0')(x))
    y = conv(self.features, 3, self.stride, self.dtype, 'conv0')(o1)
    o2 = nn.relu(batch_norm(train, self.dtype, 'bn1')(y))
    z = conv(self.features, 3, 1, self.dtype, 'conv1')(o2)
    if x.shape[-1] != self.features or self.stride != 1:
      return z + conv(self.features, 1, self.stride, self.dtype, 'shortcut')(o1)
    return z + x


class PostActivationBlock(nn.Module):
  """ResNet-18/34 basic block: [B, H, W, C] -> [B, ⌈H/s⌉, ⌈W/s⌉, features].

  out = ReLU(BN(conv3×3(ReLU(BN(conv3×3(x, stride s))))) + shortcut(x)), where the shortcut is
  BN(conv1×1(x, stride s)) where the shape changes, else x.
  """
  features: int
  stride: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool):
    y = conv(self.features, 3, self.stride, self.dtype, 'conv0')(x)
    y = nn.relu(batch_norm(train, self.dtype, 'bn0')(y))
    y = batch_norm(train, self.dtype, 'bn1')(conv(self.features, 3, 1, self.dtype, 'conv1')(y))
    if x.shape[-1] != self.features or self.stride != 1:
      x = conv(self.features, 1, self.stride, self.dtype, 'shortcut')(x)
      x = batch_norm(train, self.dtype, 'shortcut_bn')(x)
    return nn.relu(y + x)


class BottleneckBlock(nn.Module):
  """ResNet-50 block: [B, H, W, C] -> [B, ⌈H/s⌉, ⌈W/s⌉, 4·features].

  out = ReLU(BN(conv1×1(ReLU(BN(conv3×3(ReLU(BN(conv1×1(x))), stride s)))) · 4 wide) + shortcut(x)),
  the shortcut BN(conv1×1(x, stride s)) where the shape changes, else x.
  """
  features: int
  stride: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool):
    out_features = BOTTLENECK_EXPANSION * self.features
    y = nn.relu(batch_norm(train, self.dtype, 'bn0')(
        conv(self.features, 1, 1, self.dtype, 'conv0')(x)))
    y = nn.relu(batch_norm(train, self.dtype, 'bn1')(
        conv(self.features, 3, self.stride, self.dtype, 'conv1')(y)))
    y = batch_norm(train, self.dtype, 'bn2')(conv(out_features, 1, 1, self.dtype, 'conv2')(y))
    if x.shape[-1] != out_features or self.stride != 1:
      x = conv(out_features, 1, self.stride, self.dtype, 'shortcut')(x)
      x = batch_norm(train, self.dtype, 'shortcut_bn')(x)
    return nn.relu(y + x)


class WideResNet(nn.Module):
  """CIFAR WRN-depth-widen_factor of the AT code (attention-transfer's cifar.py, `resnet`).

  Attributes:
    depth: 6n + 4 (n blocks per group): 16 and 40 in the paper.
    widen_factor: k, the multiplier of the group widths 16, 32, 64 (not of the 16-channel stem).
    num_classes: size of the logits.
    dtype: computation dtype; parameters are always float32.
  """
  depth: int
  widen_factor: float
  num_classes: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images, *, train: bool):
    """[B, H, W, C] images -> (logits [B, num_classes], aux).

    aux: 'group_activations', the three group outputs (residual sums before any BN), [B, H, W,
    ⌊16k⌋], [B, H/2, W/2, ⌊32k⌋], [B, H/4, W/4, ⌊64k⌋] (rounded up).
    """
    blocks_per_group = wrn_blocks_per_group(self.depth)
    x = conv(WRN_STEM_WIDTH, 3, 1, self.dtype, 'stem')(images.astype(self.dtype))
    group_activations = []
    for group, (width, stride) in enumerate(zip(wrn_group_widths(self.widen_factor),
                                                WRN_GROUP_STRIDES)):
      for block in range(blocks_per_group):
        x = PreActivationBlock(width, stride if block == 0 else 1, self.dtype,
                               name=f'group{group}_block{block}')(x, train=train)
      group_activations.append(x)
    x = nn.relu(batch_norm(train, self.dtype, 'head_bn')(x))
    aux = {'group_activations': tuple(group_activations)}
    return classifier(x, self.num_classes, self.dtype), aux


class ResNet(nn.Module):
  """ImageNet ResNet: torchvision's post-activation ResNet-18/34/50 or the pre-activation
  ResNet-18/34 of the AT export (the module docstring's table).

  Attributes:
    stage_sizes: blocks per group: (2, 2, 2, 2) for ResNet-18, (3, 4, 6, 3) for ResNet-34 and
      ResNet-50 (RESNET_STAGE_SIZES).
    num_classes: size of the logits; None for a trunk without the classifier, whose output is
      the last group's feature map (after the head's BN → ReLU when pre-activated) instead of
      the logits.
    bottleneck: bottleneck blocks (ResNet-50) instead of basic blocks.
    preactivation: pre-activation basic blocks (PreActivationBlock) and a BN → ReLU head
      instead of post-activation blocks; not with bottleneck.
    stem_kernel_size, stem_stride: of the first convolution (7 and 2 for ImageNet).
    dtype: computation dtype; parameters are always float32.
  """
  stage_sizes: Sequence[int]
  num_classes: int | None
  bottleneck: bool = False
  preactivation: bool = False
  stem_kernel_size: int = 7
  stem_stride: int = 2
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images, *, train: bool):
    """[B, H, W, C] images -> (logits [B, num_classes], aux).

    aux: 'group_activations', the group outputs, [B, H/4, W/4, 64], [B, H/8, W/8, 128], ...
    (56², 28², 14², 7² for 224² inputs; 4× the channels with bottlenecks): after each group's
    last ReLU (post-activation), or its last residual sum before any BN (pre-activation).
    """
    check_preactivation(self.preactivation, self.bottleneck)
    x = conv(RESNET_STEM_WIDTH, self.stem_kernel_size, self.stem_stride, self.dtype, 'stem')(
        images.astype(self.dtype))
    x = nn.relu(batch_norm(train, self.dtype, 'stem_bn')(x))
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    group_activations = []
    for group, (num_blocks, width) in enumerate(zip(self.stage_sizes, RESNET_GROUP_WIDTHS)):
      for block in range(num_blocks):
        stride = 2 if group > 0 and block == 0 else 1
        name = f'group{group}_block{block}'
        if self.preactivation:  # the stem's BN → ReLU pre-activates the first block
          x = PreActivationBlock(width, stride, self.dtype, activated_input=not (group or block),
                                 name=name)(x, train=train)
        else:
          block_class = BottleneckBlock if self.bottleneck else PostActivationBlock
          x = block_class(width, stride, self.dtype, name=name)(x, train=train)
      group_activations.append(x)
    if self.preactivation:
      x = nn.relu(batch_norm(train, self.dtype, 'head_bn')(x))
    aux = {'group_activations': tuple(group_activations)}
    if self.num_classes is None:
      return x, aux
    return classifier(x, self.num_classes, self.dtype), aux
