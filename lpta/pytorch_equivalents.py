"""PyTorch twins of lpta's networks and train step, for `python -m lpta.benchmark --against=pytorch`.

Only that command imports this module; PyTorch is an optional dependency of it alone
(`pip install torch`). Each network is written the way a PyTorch user would write it (NCHW,
torch.nn layers, eager mode) with the same layers, the same parameter count and the same
computation as its Flax twin in lpta.models; the layer tables (VGG16_CONVS, group widths, ...)
are read from there, so the twins cannot drift apart. The step does what lpta.train.train_step
does: random crop and flip of the uint8 batch, scaling to [0, 1], per-channel normalisation,
forward in training mode (batch statistics, dropout), cross-entropy, backward, and SGD with
momentum and weight decay added to every gradient (torch.optim.SGD; optax's
add_decayed_weights → sgd is the same update).
"""

import ml_collections
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lpta import families
from lpta.errors import ConfigError
from lpta.models import resnet as flax_resnet
from lpta.models import vgg as flax_vgg


def _batch_norm(channels: int, epsilon: float, dims: int = 2) -> nn.Module:
  """Flax's BatchNorm(momentum=0.9) is PyTorch's momentum 0.1."""
  return (nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d)(channels, eps=epsilon, momentum=0.1)


class ConvBlock(nn.Sequential):
  """conv 3×3 (with bias) → BatchNorm → ReLU → Dropout, as lpta.models.vgg.ConvBlock."""

  def __init__(self, in_channels: int, out_channels: int, dropout_rate: float, epsilon: float):
    layers = [nn.Conv2d(in_channels, out_channels, 3, padding=1),
              _batch_norm(out_channels, epsilon), nn.ReLU(inplace=True)]
    if dropout_rate:
      layers.append(nn.Dropout(dropout_rate))
    super().__init__(*layers)


def _max_pool(x: torch.Tensor) -> torch.Tensor:
  """2×2 max-pool, stride 2, ceil rounding (Flax's 'SAME' for these sizes)."""
  return F.max_pool2d(x, 2, 2, ceil_mode=True)


class ConvStack(nn.Module):
  """lpta.models.vgg.ConvStack: returns the final features and {conv index: tapped output}."""

  def __init__(self, in_channels, convs, pools_after, taps=(), tap_after_pool=False,
               dropout=True, width=1.0, epsilon=1e-5):
    super().__init__()
    self.pools_after, self.taps, self.tap_after_pool = pools_after, taps, tap_after_pool
    self.blocks = nn.ModuleList()
    for channels, rate in convs:
      channels = flax_vgg.scale_width(channels, width)
      self.blocks.append(ConvBlock(in_channels, channels, rate if dropout else 0., epsilon))
      in_channels = channels

  def forward(self, x):
    return flax_vgg.run_stack(self.blocks, x, self.pools_after, self.taps, self.tap_after_pool,
                              lambda x, index: _max_pool(x))


def _flat_size(stack: ConvStack, image_shape) -> int:
  height, width, channels = image_shape
  with torch.no_grad():
    features, _ = stack.eval()(torch.zeros(1, channels, height, width))
  stack.train()
  return features[0].numel()


class AttentionEstimator(nn.Module):
  """lpta.models.attention.AttentionEstimator on NCHW local features [B, C_l, H, W], g [B, C_g]."""

  def __init__(self, local_width, global_width, model: ml_collections.ConfigDict):
    super().__init__()
    self.normalisation = model.normalisation
    self.project_local = self.project_global = None
    width = local_width
    if local_width != global_width and model.projection == 'l_up':
      self.project_local = nn.Conv2d(local_width, global_width, 1, bias=False)
      width = global_width
    elif local_width != global_width:
      self.project_global = nn.Sequential(
          _batch_norm(global_width, model.bn_epsilon, dims=1), nn.ReLU(),
          nn.Dropout(.5 if model.dropout else 0.), nn.Linear(global_width, local_width))
    self.pooled_width = width  # of g_a
    self.u = nn.Conv2d(width, 1, 1, bias=model.score_bias) if model.compatibility == 'pc' else None

  def forward(self, local, global_):
    if self.project_local is not None:
      local = self.project_local(local)
    if self.project_global is not None:
      global_ = self.project_global(global_)
    if self.u is not None:
      scores = self.u(local + global_[:, :, None, None])[:, 0]
    else:
      scores = torch.einsum('bchw,bc->bhw', local, global_)
    batch, height, width = scores.shape
    if self.normalisation == 'softmax':
      attention_map = F.softmax(scores.reshape(batch, -1), dim=1).reshape(scores.shape)
      return torch.einsum('bhw,bchw->bc', attention_map, local)
    return torch.einsum('bhw,bchw->bc', torch.sigmoid(scores), local) / (height * width)


class AttentionVGG(nn.Module):
  """lpta.models.vgg.AttentionVGG (every option of config.model) on NCHW images."""

  def __init__(self, model: ml_collections.ConfigDict, image_shape, num_classes: int):
    super().__init__()
    taps = flax_vgg.LOCAL_FEATURE_CONVS[len(flax_vgg.LOCAL_FEATURE_CONVS) - model.num_levels:]
    self.taps = taps
    self.backbone = ConvStack(image_shape[-1], flax_vgg.VGG16_CONVS + flax_vgg.EXTRA_CONVS,
                              flax_vgg.ATTENTION_POOLS_AFTER, taps, model.placement == 'after',
                              model.dropout, model.width, model.bn_epsilon)
    global_width = flax_vgg.scale_width(flax_vgg.GLOBAL_WIDTH, model.width)
    self.flat_dropout = nn.Dropout(.5 if model.dropout else 0.)
    self.global_ = nn.Linear(_flat_size(self.backbone, image_shape), global_width)
    tap_widths = [flax_vgg.scale_width(flax_vgg.VGG16_CONVS[tap - 1][0], model.width)
                  for tap in taps]
    self.attentions = nn.ModuleList(AttentionEstimator(width, global_width, model)
                                    for width in tap_widths)
    pooled_widths = ([attention.pooled_width for attention in self.attentions]
                     or [global_width])
    self.preactivations = nn.ModuleList(
        nn.Sequential(_batch_norm(width, model.bn_epsilon, dims=1), nn.ReLU(),
                      nn.Dropout(.5 if model.dropout else 0.))
        for width in pooled_widths if model.num_levels and model.head_preactivation)
    if model.head == 'concat':
      self.classifiers = nn.ModuleList([nn.Linear(sum(pooled_widths), num_classes)])
    else:
      self.classifiers = nn.ModuleList(nn.Linear(width, num_classes) for width in pooled_widths)

  def forward(self, images):
    features, local_features = self.backbone(images)
    global_features = self.global_(self.flat_dropout(features.flatten(1)))
    pooled = [attention(local_features[tap], global_features)
              for attention, tap in zip(self.attentions, self.taps)] or [global_features]
    if len(self.preactivations):
      pooled = [preactivate(descriptor)
                for preactivate, descriptor in zip(self.preactivations, pooled)]
    if len(self.classifiers) == 1:
      return self.classifiers[0](torch.cat(pooled, dim=1))
    return sum(classify(descriptor) for classify, descriptor in zip(self.classifiers, pooled))


class VGG(nn.Module):
  """lpta.models.vgg.VGG, the baseline VGG-16, on NCHW images."""

  def __init__(self, model: ml_collections.ConfigDict, image_shape, num_classes: int):
    super().__init__()
    self.backbone = ConvStack(image_shape[-1], flax_vgg.VGG16_CONVS,
                              flax_vgg.BASELINE_POOLS_AFTER, dropout=model.dropout,
                              width=model.width, epsilon=model.bn_epsilon)
    hidden = flax_vgg.scale_width(flax_vgg.GLOBAL_WIDTH, model.width)
    rate = .5 if model.dropout else 0.
    self.head = nn.Sequential(
        nn.Dropout(rate), nn.Linear(_flat_size(self.backbone, image_shape), hidden),
        _batch_norm(hidden, model.bn_epsilon, dims=1), nn.ReLU(), nn.Dropout(rate),
        nn.Linear(hidden, num_classes))

  def forward(self, images):
    return self.head(self.backbone(images)[0].flatten(1))


def _conv(in_channels, out_channels, kernel_size, stride=1):
  """k×k convolution without bias, padding k // 2 (lpta.models.resnet.conv)."""
  return nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False)


class PreActivationBlock(nn.Module):
  """lpta.models.resnet.PreActivationBlock (WRN basic block)."""

  def __init__(self, in_channels, out_channels, stride):
    super().__init__()
    self.bn0, self.conv0 = _batch_norm(in_channels, 1e-5), _conv(in_channels, out_channels, 3, stride)
    self.bn1, self.conv1 = _batch_norm(out_channels, 1e-5), _conv(out_channels, out_channels, 3)
    self.shortcut = (_conv(in_channels, out_channels, 1, stride)
                     if in_channels != out_channels or stride != 1 else None)

  def forward(self, x):
    o1 = F.relu(self.bn0(x))
    z = self.conv1(F.relu(self.bn1(self.conv0(o1))))
    return z + (x if self.shortcut is None else self.shortcut(o1))


class WideResNet(nn.Module):
  """lpta.models.resnet.WideResNet (CIFAR WRN-d-k) on NCHW images."""

  def __init__(self, model: ml_collections.ConfigDict, image_shape, num_classes: int):
    super().__init__()
    blocks_per_group = flax_resnet.wrn_blocks_per_group(model.depth)
    layers = [_conv(image_shape[-1], flax_resnet.WRN_STEM_WIDTH, 3)]
    in_channels = flax_resnet.WRN_STEM_WIDTH
    for width, stride in zip(flax_resnet.wrn_group_widths(model.widen_factor),
                             flax_resnet.WRN_GROUP_STRIDES):
      for block in range(blocks_per_group):
        layers.append(PreActivationBlock(in_channels, width, stride if block == 0 else 1))
        in_channels = width
    layers += [_batch_norm(in_channels, 1e-5), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
               nn.Linear(in_channels, num_classes)]
    self.layers = nn.Sequential(*layers)

  def forward(self, images):
    return self.layers(images)


class PostActivationBlock(nn.Module):
  """lpta.models.resnet.PostActivationBlock (ResNet-18/34 basic block)."""

  def __init__(self, in_channels, out_channels, stride):
    super().__init__()
    self.conv0, self.bn0 = _conv(in_channels, out_channels, 3, stride), _batch_norm(out_channels, 1e-5)
    self.conv1, self.bn1 = _conv(out_channels, out_channels, 3), _batch_norm(out_channels, 1e-5)
    self.shortcut = (nn.Sequential(_conv(in_channels, out_channels, 1, stride),
                                   _batch_norm(out_channels, 1e-5))
                     if in_channels != out_channels or stride != 1 else nn.Identity())

  def forward(self, x):
    y = self.bn1(self.conv1(F.relu(self.bn0(self.conv0(x)))))
    return F.relu(y + self.shortcut(x))


class ResNet(nn.Module):
  """lpta.models.resnet.ResNet (torchvision's ResNet-18/34 layout) on NCHW images."""

  def __init__(self, model: ml_collections.ConfigDict, image_shape, num_classes: int):
    super().__init__()
    layers = [_conv(image_shape[-1], flax_resnet.RESNET_STEM_WIDTH, 7, 2),
              _batch_norm(flax_resnet.RESNET_STEM_WIDTH, 1e-5), nn.ReLU(),
              nn.MaxPool2d(3, 2, 1)]
    in_channels = flax_resnet.RESNET_STEM_WIDTH
    for group, (num_blocks, width) in enumerate(zip(
        flax_resnet.RESNET_STAGE_SIZES[model.depth], flax_resnet.RESNET_GROUP_WIDTHS)):
      for block in range(num_blocks):
        layers.append(PostActivationBlock(in_channels, width,
                                          2 if group > 0 and block == 0 else 1))
        in_channels = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_channels, num_classes)]
    self.layers = nn.Sequential(*layers)

  def forward(self, images):
    return self.layers(images)


NETWORKS = {'attention_vgg': AttentionVGG, 'vgg': VGG, 'wrn': WideResNet, 'resnet': ResNet}
# Model fields whose other values the twins do not build (they know the defaults).
_FIELDS_WITHOUT_TWIN = ('preactivation', 'junction_gradient_averaging', 'first_pool_size')


def build(model: ml_collections.ConfigDict, image_shape, num_classes: int) -> nn.Module:
  """The PyTorch twin of `config.model` for images [H, W, C], in training mode."""
  if model.name not in NETWORKS:
    raise ConfigError(f'config.model.name={model.name!r} has no PyTorch twin; '
                      f'--against=pytorch knows {", ".join(NETWORKS)}.')
  defaults = {field.name: field.default for field in families.family_class(model.name).fields[
      model.name]}
  if any(model.get(name, defaults[name]) != defaults[name] for name in _FIELDS_WITHOUT_TWIN
         if name in defaults):
    raise ConfigError('config.model.preactivation, junction_gradient_averaging and '
                      'first_pool_size have no PyTorch twin; --against=pytorch knows their '
                      'defaults (False, False, 2).')
  if model.name == 'resnet' and model.depth in flax_resnet.RESNET_BOTTLENECK_DEPTHS:
    raise ConfigError(f'config.model.depth={model.depth} (bottleneck blocks) has no PyTorch twin; '
                      '--against=pytorch knows ResNet-18 and ResNet-34.')
  return NETWORKS[model.name](model, image_shape, num_classes).train()


def count_parameters(network: nn.Module) -> int:
  return sum(parameter.numel() for parameter in network.parameters())


def flax_leaves_in_order(params) -> list:
  """The leaves of a Flax parameter tree in the order the modules created them (jax.tree
  sorts keys; this does not). Each twin creates its parameters in the same order."""
  if not isinstance(params, dict):
    return [params]
  return [leaf for value in params.values() for leaf in flax_leaves_in_order(value)]


def load_flax_parameters(network: nn.Module, params) -> None:
  """Copies Flax parameters into the twin, each in PyTorch's layout (torch_layout)."""
  leaves = flax_leaves_in_order(params)
  parameters = list(network.parameters())
  if len(leaves) != len(parameters):
    raise ValueError(f'{len(leaves)} Flax leaves for {len(parameters)} PyTorch parameters')
  with torch.no_grad():
    for parameter, leaf in zip(parameters, leaves):
      parameter.copy_(torch.from_numpy(torch_layout(leaf)).reshape(parameter.shape))


def torch_layout(array) -> np.ndarray:
  """A Flax parameter (or its gradient) in PyTorch's layout: conv kernels HWIO → OIHW, dense
  kernels [in, out] → [out, in], the rest as they are."""
  array = np.array(array)
  if array.ndim == 4:
    return np.ascontiguousarray(array.transpose(3, 2, 0, 1))
  if array.ndim == 2:
    return np.ascontiguousarray(array.T)
  return array


class TrainStep:
  """One SGD step of a PyTorch twin on a uint8 batch, as lpta.train.train_step does it.

  images: uint8 [B, H, W, C] (NHWC, as lpta's batches); labels: int64 [B].
  """

  def __init__(self, network: nn.Module, config: ml_collections.ConfigDict, mean, std):
    self.network = network
    self.optimizer = torch.optim.SGD(
        network.parameters(), lr=config.optimizer.learning_rate,
        momentum=config.optimizer.momentum, nesterov=config.optimizer.nesterov,
        weight_decay=config.optimizer.weight_decay)
    self.crop_padding = config.data.random_crop_padding
    self.flip = config.data.random_flip
    self.mean = torch.as_tensor(mean, dtype=torch.float32)[:, None, None]
    self.std = torch.as_tensor(std, dtype=torch.float32)[:, None, None]

  def augment(self, images: torch.Tensor) -> torch.Tensor:
    """Random crop of the zero-padded images and random horizontal flip, per example."""
    batch, height, width, _ = images.shape
    if self.crop_padding:
      padding = self.crop_padding
      padded = F.pad(images, (0, 0, padding, padding, padding, padding))
      offsets = torch.randint(0, 2 * padding + 1, (batch, 2))
      rows = offsets[:, 0, None] + torch.arange(height)
      columns = offsets[:, 1, None] + torch.arange(width)
      images = padded[torch.arange(batch)[:, None, None], rows[:, :, None], columns[:, None, :]]
    if self.flip:
      flipped = torch.rand(batch) < .5
      images = torch.where(flipped[:, None, None, None], images.flip(2), images)
    return images

  def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    pixels = self.augment(images).permute(0, 3, 1, 2).float() / 255
    logits = self.network((pixels - self.mean) / self.std)
    loss = F.cross_entropy(logits, labels)
    self.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    self.optimizer.step()
    return loss.detach()
