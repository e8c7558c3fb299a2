"""The fine-grained glimpse model (Sermanet, Frome & Real 2014, as reworked by
rohithreddy024/Visual-Attention-Pytorch's models.py, main.py and helper_functions.py), and its
trunk pretraining network.

One trunk (a feature extractor, frozen or not) sees a low-resolution context image and the
glimpses. With S the side of the square input image and g = glimpse_size:
  context: the image resized to g² → trunk → feature map [B, h, w, F] → average over each
    quadrant → four region vectors v_r, r = TL, TR, BL, BR;
  decision 0: scores = w_cᵀ v_r (a 1×1 convolution without bias);
  decision t ≥ 1: scores = w_hᵀ tanh(W_v v_r + W_g h_t) (additive attention over the regions);
  p = softmax(scores); the mean location μ = (p_TR + p_BR − p_TL − p_BL, p_BL + p_BR − p_TL − p_TR)
    in [-1, 1]², x to the right and y downwards (the repository's y pointed up); l ~ N(μ, σ² I),
    used clipped to [-1, 1]² and without gradient (as RAM, lpta.models.ram);
  glimpse: k windows of sides (S/4)·start_size·2^j around l, each resized to g² →
    trunk → global average → concatenated [B, k·F] → LSTM;
  after `num_glimpses` glimpses: classifier on h; a baseline ReLU(W_b h + c) with each decision.
The policy (region scores and attention) reads v_r and h through a stop-gradient, so REINFORCE
trains only the policy; a frozen trunk runs in inference mode (BatchNorm running statistics)
behind a stop-gradient, and its parameters get no update (lpta.families.fine_grained masks them).
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lpta.models import at_least_float32
from lpta.models import glimpse
from lpta.models import ram
from lpta.models import resnet

TRUNKS = ('resnet50', 'small_cnn')
# Signs of the four regions (TL, TR, BL, BR) in μ_x and μ_y (numpy: importing lpta must not start
# the XLA backend before jax.distributed.initialize).
_REGION_X = np.array([-1., 1., -1., 1.], np.float32)
_REGION_Y = np.array([-1., -1., 1., 1.], np.float32)


class SmallTrunk(nn.Module):
  """A CPU-scale trunk: per width, a 3×3 stride-2 convolution → BatchNorm → ReLU.
  [B, H, W, C] -> [B, H/2^n, W/2^n, widths[-1]]."""
  widths: Sequence[int] = (16, 32, 64)
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool):
    for index, width in enumerate(self.widths):
      x = resnet.conv(width, 3, 2, self.dtype, f'conv{index}')(x)
      x = nn.relu(resnet.batch_norm(train, self.dtype, f'bn{index}')(x))
    return x


def make_trunk(name: str, small_widths: Sequence[int], dtype) -> nn.Module:
  """The trunk module, named 'trunk': ResNet-50 with the repository's 5×5 stride-1 stem (a 96²
  glimpse gives 6×6×2048), or a SmallTrunk."""
  if name == 'resnet50':
    return resnet.ResNet(resnet.RESNET_STAGE_SIZES[50], None, bottleneck=True,
                         stem_kernel_size=5, stem_stride=1, dtype=dtype, name='trunk')
  return SmallTrunk(tuple(small_widths), dtype, name='trunk')


def trunk_features(trunk: nn.Module, images, train: bool):
  """The trunk's feature map [B, h, w, F] (ResNet returns (features, aux))."""
  features = trunk(images, train=train)
  return features[0] if isinstance(features, tuple) else features


def quadrant_regions(feature_map):
  """[B, h, w, F] -> [B, 4, F]: the mean over each quadrant, TL, TR, BL, BR (h, w even)."""
  batch, height, width, channels = feature_map.shape
  quadrants = feature_map.reshape(batch, 2, height // 2, 2, width // 2, channels).mean((2, 4))
  return quadrants.reshape(batch, 4, channels)


def mean_location(region_probabilities):
  """μ [B, 2] = (p_TR + p_BR − p_TL − p_BL, p_BL + p_BR − p_TL − p_TR) from p [B, 4]."""
  return jnp.stack([region_probabilities @ _REGION_X, region_probabilities @ _REGION_Y], -1)


def glimpse_sides(image_side: int, start_size: int, num_resolutions: int) -> tuple[int, ...]:
  """The glimpse sides (S/4)·start_size·2^j, j < k, for an image of side S."""
  return tuple(image_side // 4 * start_size * 2**j for j in range(num_resolutions))


class FineGrainedGlimpseModel(nn.Module):
  """images [B, S, S, C] -> (logits [B, K], aux) with aux as lpta.models.ram's for one
  trajectory (M = 1): 'trajectory_logits' [B, 1, K], 'locations' [B, T, 2], 'log_probs'
  [B, 1, T], 'baseline_logits' [B, 1, T] (T = num_glimpses decisions)."""
  num_classes: int
  trunk: str = 'resnet50'
  trunk_frozen: bool = True
  small_trunk_widths: Sequence[int] = (16, 32, 64)
  glimpse_size: int = 96
  num_glimpses: int = 1
  num_resolutions: int = 2
  start_size: int = 2
  location_std: float = 0.2
  hidden_units: int = 2048
  attention_units: int = 1024
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images, *, train: bool, sample_locations: bool | None = None):
    sample = train if sample_locations is None else sample_locations
    batch, side, _, channels = images.shape
    size = self.glimpse_size
    trunk = make_trunk(self.trunk, self.small_trunk_widths, self.dtype)

    def features(x):
      feature_map = trunk_features(trunk, x, train=train and not self.trunk_frozen)
      return jax.lax.stop_gradient(feature_map) if self.trunk_frozen else feature_map

    context = jax.image.resize(images, (batch, size, size, channels), 'linear', antialias=True)
    regions = jax.lax.stop_gradient(at_least_float32(quadrant_regions(features(context))))
    core = nn.OptimizedLSTMCell(self.hidden_units, dtype=self.dtype, name='core')
    carry = (jnp.zeros((batch, self.hidden_units), self.dtype),) * 2
    hidden = carry[1]
    baseline = nn.Dense(1, name='baseline')
    scores = nn.Dense(1, use_bias=False, name='context_scores')(regions)[..., 0]
    attention = RegionAttention(self.attention_units, name='region_attention')
    locations, log_probs, baseline_logits = [], [], []
    for step in range(self.num_glimpses):
      state = jax.lax.stop_gradient(at_least_float32(hidden))
      if step:
        scores = attention(regions, state)
      location, log_prob = ram.sample_location(
          mean_location(jax.nn.softmax(scores, axis=-1)), self.location_std,
          self.make_rng('location') if sample else None)
      log_probs.append(log_prob)
      baseline_logits.append(baseline(state)[:, 0])
      locations.append(location)
      patches = glimpse.resized_glimpses(
          images, location, glimpse_sides(side, self.start_size, self.num_resolutions), size)
      glimpse_features = features(patches.reshape(-1, size, size, channels)).mean((1, 2))
      carry, hidden = core(carry, glimpse_features.reshape(batch, -1))
    classifier = nn.Dense(self.num_classes, dtype=self.dtype, name='classifier')
    logits = at_least_float32(classifier(hidden))
    # One trajectory per image: the M = 1 axis of lpta.models.ram's aux.
    aux = {'trajectory_logits': logits[:, None], 'locations': jnp.stack(locations, 1),
           'log_probs': jnp.stack(log_probs, 1)[:, None],
           'baseline_logits': jnp.stack(baseline_logits, 1)[:, None]}
    return logits, aux


class RegionAttention(nn.Module):
  """Scores [B, 4] = w_hᵀ tanh(W_v v_r + W_g h), no biases: regions [B, 4, F], h [B, H]."""
  units: int

  @nn.compact
  def __call__(self, regions, hidden):
    projected = (nn.Dense(self.units, use_bias=False, name='regions')(regions)
                 + nn.Dense(self.units, use_bias=False, name='hidden')(hidden)[:, None])
    return nn.Dense(1, use_bias=False, name='score')(jnp.tanh(projected))[..., 0]


# The pretraining heads: which of the (high, medium, low) resolutions each one concatenates.
PRETRAINING_HEADS = ((0, 1), (0, 2), (1, 2), (0, 1, 2))


class TrunkPretraining(nn.Module):
  """The repository's trunk pretraining network (its pretrain.py): the centred squares of sides
  S/4, S/2 and S (high, medium, low resolution) resized to g², one shared trunk, global
  averages, and a head per combination in PRETRAINING_HEADS: Dense(head_units) → BatchNorm →
  ReLU → Dense(K). images [B, S, S, C] -> (logits of the three-resolution head [B, K],
  {'head_logits': one [B, K] per head}).
  """
  num_classes: int
  trunk: str = 'resnet50'
  small_trunk_widths: Sequence[int] = (16, 32, 64)
  glimpse_size: int = 96
  head_units: int = 1024
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images, *, train: bool):
    batch, side, _, channels = images.shape
    size = self.glimpse_size
    crops = glimpse.resized_glimpses(images, jnp.zeros((batch, 2)), (side // 4, side // 2, side),
                                     size)
    trunk = make_trunk(self.trunk, self.small_trunk_widths, self.dtype)
    features = trunk_features(trunk, crops.reshape(-1, size, size, channels), train)
    features = features.mean((1, 2)).reshape(batch, 3, -1)
    head_logits = []
    for index, resolutions in enumerate(PRETRAINING_HEADS):
      x = features[:, resolutions].reshape(batch, -1)
      x = nn.Dense(self.head_units, dtype=self.dtype, name=f'head{index}_hidden')(x)
      x = nn.relu(resnet.batch_norm(train, self.dtype, f'head{index}_bn')(x))
      head_logits.append(at_least_float32(
          nn.Dense(self.num_classes, dtype=self.dtype, name=f'head{index}_classifier')(x)))
    return head_logits[-1], {'head_logits': tuple(head_logits)}
