"""python -m lpta.import_weights: PyTorch weights of the seeds, imported and loaded with
lpta.load_run, compute what the PyTorch networks compute.

The PyTorch networks are written here with the originals' module and key names (the LTPA port's
blocks.py, model1.py and model2.py; functional-zoo's folded ResNet and its pre-activation
ResNet-18-AT), random weights and random BatchNorm statistics or affine layers, and run in
float64; lpta runs in float32.
"""

import collections
import json
import pathlib
import subprocess
import sys

from absl import flags
import jax
import ml_collections
import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import lpta
from lpta import checkpoints
from lpta import families
from lpta import fine_tuning
from lpta import import_weights
from lpta import train
from lpta.data import streamed
from lpta.errors import CheckpointError, ConfigError

REPO_ROOT = pathlib.Path(__file__).parent.parent
RESNET18 = (2, 2, 2, 2)
WIDTHS = (64, 128, 256, 512)
# resnet-18-at-export.ipynb prints this total of its 56 tensors.
AT_EXPORT_PARAMETERS = 11_687_720


def assert_close(actual, expected):
  """Equal within 1e-4 of the largest magnitude of `expected` (the float64 reference).

  lpta computes in float32 (unit roundoff 6e-8). Each of the ~17 layers sums up to 4,608
  products (3×3×512), whose rounding error grows like √n · 6e-8 ≈ 4e-6 of their scale at worst;
  measured, the outputs here sit 0.4–3e-6 of their scale from the reference. 1e-4 leaves room
  for other CPUs' summation orders and still fails for any misplaced or mistransposed tensor,
  which changes the outputs by O(1).
  """
  expected = np.asarray(expected, np.float64)
  np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=1e-4,
                             atol=1e-4 * np.abs(expected).max())


def randomise(network: nn.Module, seed: int) -> nn.Module:
  """He-normal weights, small random biases, random BatchNorm affine and running statistics."""
  generator = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for module in network.modules():
      if isinstance(module, (nn.Conv2d, nn.Linear)):
        module.weight.normal_(0, (2 / module.weight[0].numel()) ** .5, generator=generator)
        if module.bias is not None:
          module.bias.normal_(0, .1, generator=generator)
      elif isinstance(module, nn.BatchNorm2d):
        module.weight.uniform_(.5, 1.5, generator=generator)
        module.bias.normal_(0, .1, generator=generator)
        module.running_mean.normal_(0, .1, generator=generator)
        module.running_var.uniform_(.5, 1.5, generator=generator)
  return network


# --- The LTPA PyTorch port (SaoYan/LearnToPayAttention), by its module names. ---

class PortConvBlock(nn.Module):
  """blocks.ConvBlock: `op` = n × [Conv2d 3×3, BatchNorm2d, ReLU (, MaxPool2d 2 if pool)]."""

  def __init__(self, in_channels, out_channels, num_convs, pool=False):
    super().__init__()
    layers = []
    for index in range(num_convs):
      layers += [nn.Conv2d(in_channels if index == 0 else out_channels, out_channels, 3,
                           padding=1), nn.BatchNorm2d(out_channels), nn.ReLU()]
      if pool:
        layers.append(nn.MaxPool2d(2, 2))
    self.op = nn.Sequential(*layers)

  def forward(self, x):
    return self.op(x)


class PortAttention(nn.Module):
  """blocks.LinearAttentionBlock: c = op(l + g), returned before normalisation, and g_a."""

  def __init__(self, normalize_attn: bool):
    super().__init__()
    self.normalize_attn = normalize_attn
    self.op = nn.Conv2d(512, 1, 1, bias=False)

  def forward(self, local, global_):
    scores = self.op(local + global_)  # [B, 1, H, W]
    if self.normalize_attn:
      weights = F.softmax(scores.flatten(2), dim=2).view_as(scores)
      return scores, (weights * local).sum((2, 3))
    return scores, (torch.sigmoid(scores) * local).mean((2, 3))


class PortAttnVGG(nn.Module):
  """model1.AttnVGG_before / model2.AttnVGG_after for 32×32 CIFAR-100 images."""

  def __init__(self, placement: str, normalize_attn: bool):
    super().__init__()
    self.placement = placement
    for block, (ins, outs, convs) in enumerate(
        [(3, 64, 2), (64, 128, 2), (128, 256, 3), (256, 512, 3), (512, 512, 3)], start=1):
      setattr(self, f'conv_block{block}', PortConvBlock(ins, outs, convs))
    self.conv_block6 = PortConvBlock(512, 512, 2, pool=True)
    self.dense = nn.Conv2d(512, 512, 1)  # kernel im_size / 32 = 1
    self.projector = nn.Sequential(collections.OrderedDict(op=nn.Conv2d(256, 512, 1, bias=False)))
    self.attn1, self.attn2, self.attn3 = (PortAttention(normalize_attn) for _ in range(3))
    self.classify = nn.Linear(3 * 512, 100)

  def forward(self, x):
    """Logits [B, 100] and the scores c^1..c^3 [B, 1, h, w]."""
    pool = lambda t: F.max_pool2d(t, 2, 2)
    x = self.conv_block2(self.conv_block1(x))
    if self.placement == 'before':
      l1 = self.conv_block3(x)
      l2 = self.conv_block4(pool(l1))
      l3 = self.conv_block5(pool(l2))
      x = pool(l3)
    else:
      l1 = pool(self.conv_block3(x))
      l2 = pool(self.conv_block4(l1))
      l3 = x = pool(self.conv_block5(l2))
    g = self.dense(self.conv_block6(x))
    (c1, g1), (c2, g2), (c3, g3) = (self.attn1(self.projector(l1), g), self.attn2(l2, g),
                                    self.attn3(l3, g))
    return self.classify(torch.cat([g1, g2, g3], dim=1)), (c1, c2, c3)


@pytest.fixture(scope='module')
def port_file(tmp_path_factory):
  """A random port network's state_dict as its train.py saves it (from nn.DataParallel, so
  every key starts with `module.`). Placement and normalisation add no tensors."""
  network = randomise(PortAttnVGG('before', True), seed=0)
  path = tmp_path_factory.mktemp('port') / 'net.pth'
  torch.save({f'module.{key}': value for key, value in network.state_dict().items()}, path)
  return path


def port_reference(path, placement, normalisation, pixels):
  """The port network of the file at `path` in float64, eval mode, on pixels [B, H, W, 3] in
  [0, 1] normalised as the port does: (logits, scores [B, h, w] per level)."""
  network = PortAttnVGG(placement, normalisation == 'softmax')
  state = torch.load(path, weights_only=True)
  network.load_state_dict({key.removeprefix('module.'): value for key, value in state.items()})
  inputs = (pixels - np.array(import_weights.PORT_MEAN)) / np.array(import_weights.PORT_STD)
  with torch.no_grad():
    logits, scores = network.double().eval()(torch.from_numpy(inputs.transpose(0, 3, 1, 2)))
  return logits.numpy(), [c[:, 0].numpy() for c in scores]


def _images(shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (2, *shape), dtype=np.uint8)


def _run_command(*args):
  return subprocess.run([sys.executable, '-m', 'lpta.import_weights', *args], cwd=REPO_ROOT,
                        capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize('placement, normalisation, via_command', [
    ('before', 'softmax', False), ('before', 'sigmoid', False), ('after', 'softmax', False),
    ('after', 'sigmoid', True)])
def test_port_imports_and_computes_the_same_logits_and_maps(port_file, tmp_path, placement,
                                                            normalisation, via_command):
  workdir = tmp_path / 'run'
  if via_command:
    result = _run_command('--format=ltpa_pytorch_port', f'--checkpoint={port_file}',
                          f'--placement={placement}', f'--normalisation={normalisation}',
                          f'--workdir={workdir}')
    assert result.returncode == 0, result.stderr
    assert f'python -m lpta.predict --workdir={workdir}' in result.stdout
  else:
    import_weights.import_weights('ltpa_pytorch_port', str(port_file), workdir,
                                  placement=placement, normalisation=normalisation)
  run = lpta.load_run(workdir)
  assert (run.step, run.image_shape, run.class_names) == (0, (32, 32, 3),
                                                          import_weights.CIFAR100_CLASSES)
  assert (run.config.model.placement, run.config.model.normalisation) == (placement,
                                                                          normalisation)
  assert run.config.data.name == 'cifar100'
  np.testing.assert_array_equal(run.normalisation.mean,
                                np.float32(import_weights.PORT_MEAN))
  np.testing.assert_array_equal(run.normalisation.std, np.float32(import_weights.PORT_STD))

  images = _images((32, 32, 3))
  logits, aux = run.predict(images)
  expected_logits, expected_scores = port_reference(port_file, placement, normalisation,
                                                    images / 255)
  assert_close(logits, expected_logits)
  sides = (32, 16, 8) if placement == 'before' else (16, 8, 4)
  for level, (scores, side) in enumerate(zip(expected_scores, sides)):
    assert scores.shape == (2, side, side)
    assert_close(aux['attention_scores'][level], scores)
    flat = torch.from_numpy(scores.reshape(2, -1))
    maps = (F.softmax(flat, dim=1) if normalisation == 'softmax' else torch.sigmoid(flat))
    assert_close(aux['attention_maps'][level], maps.numpy().reshape(scores.shape))
  provenance = json.loads((workdir / 'imported_from.json').read_text())
  assert (provenance['format'], provenance['placement']) == ('ltpa_pytorch_port', placement)
  assert json.loads((workdir / 'config.json').read_text())['model']['projection'] == 'l_up'


# --- functional-zoo's folded ResNet (resnet-18-export.pth, resnet-34-export.pth). ---

def folded_resnet_state(stage_sizes, seed: int = 0) -> dict[str, torch.Tensor]:
  """Random tensors under the export's keys: every conv with a bias (its folded BatchNorm)
  except the 1×1 shortcuts `conv_dim`."""
  generator = torch.Generator().manual_seed(seed)

  def he(*shape):  # He-normal, scaled down so the residual sums stay moderate
    return torch.randn(*shape, generator=generator) * (2 / np.prod(shape[1:])) ** .5 * .7

  def small(size):
    return torch.randn(size, generator=generator) * .1

  state = {'conv0.weight': he(64, 3, 7, 7), 'conv0.bias': small(64)}
  in_channels = 64
  for group, (num_blocks, width) in enumerate(zip(stage_sizes, WIDTHS)):
    for block in range(num_blocks):
      prefix = f'group{group}.block{block}'
      state[f'{prefix}.conv0.weight'] = he(width, in_channels, 3, 3)
      state[f'{prefix}.conv0.bias'] = small(width)
      state[f'{prefix}.conv1.weight'] = he(width, width, 3, 3)
      state[f'{prefix}.conv1.bias'] = small(width)
      if group and not block:
        state[f'{prefix}.conv_dim.weight'] = he(width, in_channels, 1, 1)
      in_channels = width
  state['fc.weight'], state['fc.bias'] = he(1000, 512), small(1000)
  return state


def folded_resnet(params, inputs, stage_sizes):
  """The export's forward pass (functional, as functional-zoo defines it): (logits, the four
  group outputs). The original's avg_pool2d(7) is the mean over the 7×7 map of a 224² image;
  here the mean over the map of any size."""

  def conv(x, name, stride, padding):
    return F.conv2d(x, params[f'{name}.weight'], params.get(f'{name}.bias'), stride, padding)

  x = F.max_pool2d(F.relu(conv(inputs, 'conv0', 2, 3)), 3, 2, 1)
  groups = []
  for group, num_blocks in enumerate(stage_sizes):
    for block in range(num_blocks):
      prefix, stride = f'group{group}.block{block}', 2 if group and not block else 1
      y = conv(F.relu(conv(x, f'{prefix}.conv0', stride, 1)), f'{prefix}.conv1', 1, 1)
      shortcut = conv(x, f'{prefix}.conv_dim', stride, 0) if group and not block else x
      x = F.relu(y + shortcut)
    groups.append(x)
  return F.linear(x.mean((2, 3)), params['fc.weight'], params['fc.bias']), groups


@pytest.fixture(scope='module')
def resnet_file(tmp_path_factory):
  path = tmp_path_factory.mktemp('resnet') / 'resnet-18-export.pth'
  torch.save(folded_resnet_state(RESNET18), path)
  return path


def test_folded_resnet18_imports_and_computes_the_same_logits_and_group_outputs(
    resnet_file, tmp_path):
  workdir = tmp_path / 'run'
  import_weights.import_weights('at_functional_zoo', str(resnet_file), workdir)
  run = lpta.load_run(workdir)
  assert (run.config.model.name, run.config.model.depth) == ('resnet', 18)
  assert run.image_shape == (224, 224, 3) and run.config.data.name == 'imagenet2012'
  assert len(run.class_names) == 1000 and run.class_names[:2] == ('n01440764', 'n01443537')
  np.testing.assert_array_equal(run.normalisation.mean, streamed.MEAN)
  # Each folded bias is the shift of an identity BatchNorm.
  stem_bn = run.variables['batch_stats']['stem_bn']
  np.testing.assert_array_equal(stem_bn['var'], np.float32(1 - 1e-5))
  np.testing.assert_array_equal(run.variables['params']['stem_bn']['scale'], 1)

  # A 64² image keeps the test fast: the network ends with a global mean either way.
  pixels = _images((64, 64, 3)) / 255
  logits, aux = jax.jit(run.apply)(run.arrays, pixels.astype(np.float32))
  params = {key: value.double() for key, value in torch.load(resnet_file).items()}
  inputs = (pixels - streamed.MEAN) / streamed.STD
  with torch.no_grad():
    expected_logits, groups = folded_resnet(params, torch.from_numpy(inputs.transpose(0, 3, 1, 2)),
                                            RESNET18)
  assert_close(logits, expected_logits.numpy())
  for actual, expected in zip(aux['group_activations'], groups, strict=True):
    assert_close(actual, expected.numpy().transpose(0, 2, 3, 1))

  # Fine-tuning (config.init_from) takes every array of the imported run.
  init_from = ml_collections.ConfigDict({'workdir': str(workdir), 'step': 'latest',
                                         'exclude': ()})
  fresh = jax.tree.map(np.zeros_like, run.variables)
  merged, report = fine_tuning.initialise_from(init_from, fresh, run.family, 1000,
                                               run.image_shape, mesh=None)
  assert report.reinitialised == () and len(report.loaded) == len(jax.tree.leaves(fresh))
  jax.tree.map(np.testing.assert_array_equal, merged, run.variables)
  assert run.config.model.preactivation is False  # torchvision's layout

  # Importing again into the same workdir is refused and leaves the run as it was.
  before = {path: path.read_bytes() for path in workdir.rglob('*') if path.is_file()}
  with pytest.raises(CheckpointError, match='already holds a run'):
    import_weights.import_weights('at_functional_zoo', str(resnet_file), workdir)
  assert {path: path.read_bytes() for path in workdir.rglob('*') if path.is_file()} == before


# --- functional-zoo's pre-activation ResNet-18-AT (resnet-18-at-export.pth). ---

def preactivation_resnet_state(stage_sizes, seed: int = 0) -> dict[str, torch.Tensor]:
  """Random tensors under the export's keys (resnet-18-at-export.ipynb lists them): convs
  without bias or `.weight` suffix, affine layers (a, b) before each conv but the first block's
  first, and before the pool (affine_last)."""
  generator = torch.Generator().manual_seed(seed)

  def he(*shape):  # He-normal, scaled down so the residual sums stay moderate
    return torch.randn(*shape, generator=generator) * (2 / np.prod(shape[1:])) ** .5 * .7

  def affine(name, channels):
    return {f'{name}.a': torch.rand(channels, generator=generator) + .5,
            f'{name}.b': torch.randn(channels, generator=generator) * .1}

  state = {'conv0': he(64, 3, 7, 7), **affine('affine0', 64)}
  in_channels = 64
  for group, (num_blocks, width) in enumerate(zip(stage_sizes, WIDTHS)):
    for block in range(num_blocks):
      prefix = f'group{group}.block{block}'
      if group or block:
        state.update(affine(f'{prefix}.affine0', in_channels))
      state[f'{prefix}.conv0'] = he(width, in_channels, 3, 3)
      state.update(affine(f'{prefix}.affine1', width))
      state[f'{prefix}.conv1'] = he(width, width, 3, 3)
      if group and not block:
        state[f'{prefix}.conv_dim'] = he(width, in_channels, 1, 1)
      in_channels = width
  state.update(affine('affine_last', 512))
  state['fc.weight'], state['fc.bias'] = he(1000, 512), torch.randn(1000, generator=generator) * .1
  return state


def preactivation_resnet(params, inputs, stage_sizes):
  """The export's forward pass, as resnet-18-at-export.ipynb defines it: (logits, the four
  group outputs o_g0..o_g3). The first block of group 0 adds its raw input (the stem's
  activated, max-pooled output); the first block of the other groups pre-activates its input
  and feeds that to both its stride-2 conv0 and its 1×1 stride-2 conv_dim; the other blocks
  pre-activate for conv0 and add their raw input. avg_pool2d(7) is the mean over the 7×7 map of
  a 224² image; here the mean over the map of any size."""

  def affine(x, name):
    return x * params[f'{name}.a'].view(1, -1, 1, 1) + params[f'{name}.b'].view(1, -1, 1, 1)

  x = F.max_pool2d(F.relu(affine(F.conv2d(inputs, params['conv0'], stride=2, padding=3),
                                 'affine0')), 3, 2, 1)
  groups = []
  for group, num_blocks in enumerate(stage_sizes):
    for block in range(num_blocks):
      prefix, stride = f'group{group}.block{block}', 2 if group and not block else 1
      activated = x if not (group or block) else F.relu(affine(x, f'{prefix}.affine0'))
      y = F.conv2d(activated, params[f'{prefix}.conv0'], stride=stride, padding=1)
      y = F.conv2d(F.relu(affine(y, f'{prefix}.affine1')), params[f'{prefix}.conv1'], padding=1)
      if group and not block:
        x = y + F.conv2d(activated, params[f'{prefix}.conv_dim'], stride=stride)
      else:
        x = y + x
    groups.append(x)
  pooled = F.relu(affine(x, 'affine_last')).mean((2, 3))
  return F.linear(pooled, params['fc.weight'], params['fc.bias']), groups


@pytest.fixture(scope='module')
def preactivation_file(tmp_path_factory):
  path = tmp_path_factory.mktemp('resnet_at') / 'resnet-18-at-export.pth'
  torch.save(preactivation_resnet_state(RESNET18), path)
  return path


def test_preactivation_resnet18_at_imports_and_computes_the_same_logits_and_group_outputs(
    preactivation_file, tmp_path):
  workdir = tmp_path / 'run'
  import_weights.import_weights('at_functional_zoo', str(preactivation_file), workdir)
  run = lpta.load_run(workdir)
  model = run.config.model
  assert (model.name, model.depth, model.preactivation) == ('resnet', 18, True)
  assert json.loads((workdir / 'config.json').read_text())['model']['preactivation'] is True
  assert run.image_shape == (224, 224, 3) and len(run.class_names) == 1000
  state = torch.load(preactivation_file, weights_only=True)
  assert len(state) == 56 and sum(t.numel() for t in state.values()) == AT_EXPORT_PARAMETERS
  assert families.count_parameters(run.variables['params']) == AT_EXPORT_PARAMETERS
  # Each affine is a BatchNorm of scale a, shift b, mean 0 and var 1 − ε: x·a + b exactly.
  params, stats = run.variables['params'], run.variables['batch_stats']
  np.testing.assert_array_equal(params['group1_block0']['bn0']['scale'],
                                state['group1.block0.affine0.a'].numpy())
  np.testing.assert_array_equal(params['head_bn']['bias'], state['affine_last.b'].numpy())
  np.testing.assert_array_equal(stats['head_bn']['var'], np.float32(1 - 1e-5))
  np.testing.assert_array_equal(stats['stem_bn']['mean'], 0)
  assert 'bn0' not in params['group0_block0']  # the stem pre-activates it
  # The recipe (configs/imagenet_resnet.py) lacks the field, which counts as False.
  assert checkpoints.describe_config_change(
      run.config.to_dict(), import_weights.experiment_config('imagenet_resnet'),
      train.added_values()) == (
          'config.model.preactivation is True in the checkpoint and False now')

  # A 64² image keeps the test fast (group outputs 16², 8², 4², 2²); the head's global mean is
  # the original's avg_pool2d(7) on a 224² image, where the last map is 7×7.
  pixels = _images((64, 64, 3), seed=1) / 255
  logits, aux = jax.jit(run.apply)(run.arrays, pixels.astype(np.float32))
  inputs = (pixels - streamed.MEAN) / streamed.STD
  with torch.no_grad():
    expected_logits, groups = preactivation_resnet(
        {key: value.double() for key, value in state.items()},
        torch.from_numpy(inputs.transpose(0, 3, 1, 2)), RESNET18)
  # assert_close's bound: float32 sums of at most 4,608 products per output, ~17 layers deep.
  assert_close(logits, expected_logits.numpy())
  assert [a.shape[1:3] for a in aux['group_activations']] == [(16, 16), (8, 8), (4, 4), (2, 2)]
  for actual, expected in zip(run.family.transfer_points(aux), groups, strict=True):
    expected = expected.numpy().transpose(0, 2, 3, 1)
    assert expected.min() < 0  # a residual sum before any ReLU, as attention transfer reads it
    assert_close(actual, expected)


def test_folded_resnet_depth_is_read_from_the_blocks_per_group():
  def keys(stage_sizes):
    return {f'group{group}.block{block}.conv0.weight': None
            for group, count in enumerate(stage_sizes) for block in range(count)}

  assert import_weights.folded_resnet_depth(keys((2, 2, 2, 2)), 'f.pth') == 18
  assert import_weights.folded_resnet_depth(keys((3, 4, 6, 3)), 'f.pth') == 34
  # The pre-activation export's convs have no `.weight` suffix.
  assert import_weights.folded_resnet_depth(
      {key.removesuffix('.weight') for key in keys((2, 2, 2, 2))}, 'f.pth') == 18
  with pytest.raises(CheckpointError, match=r'has \(3, 4, 6, 2\) blocks per group'):
    import_weights.folded_resnet_depth(keys((3, 4, 6, 2)), 'f.pth')


def test_cifar100_class_names_are_the_100_fine_labels_in_order():
  names = import_weights.CIFAR100_CLASSES
  assert len(set(names)) == 100 and list(names) == sorted(names)
  assert (names[0], names[30], names[99]) == ('apple', 'dolphin', 'worm')


# --- Refusals: one line saying what is wrong, and nothing written. ---

def _edited(source, tmp_path, edit):
  """A copy of the state_dict file `source` changed by `edit(state)`."""
  state = torch.load(source, weights_only=True)
  edit(state)
  path = tmp_path / 'edited.pth'
  torch.save(state, path)
  return path


def _preactivate_first_block(state):
  state.update({'group0.block0.affine0.a': torch.ones(64),
                'group0.block0.affine0.b': torch.zeros(64)})


@pytest.mark.parametrize('source, format_name, edit, message', [
    ('port', 'at_functional_zoo', None, 'use --format=ltpa_pytorch_port'),
    ('resnet', 'ltpa_pytorch_port', None, 'use --format=at_functional_zoo'),
    ('port', 'ltpa_pytorch_port', lambda s: s.pop('module.attn2.op.weight'),
     r'lacks tensors of .* \(1 of 98; first: attn2.op.weight\)'),
    ('port', 'ltpa_pytorch_port',
     lambda s: s.update({'module.classify.weight': torch.zeros(10, 1536)}),
     r'classify.weight has shape \(10, 1536\) in .*needs \(100, 1536\)'),
    ('port', 'ltpa_pytorch_port',
     lambda s: s.update({'module.attn4.op.weight': torch.zeros(1, 512, 1, 1)}),
     r'does not have \(1; first: attn4.op.weight\)'),
    ('resnet', 'at_functional_zoo', lambda s: s.pop('group3.block1.conv1.bias'),
     'first: group3.block1.conv1.bias'),
    ('preactivation', 'ltpa_pytorch_port', None, 'use --format=at_functional_zoo'),
    ('preactivation', 'at_functional_zoo', lambda s: s.pop('affine_last.b'),
     r"lacks tensors of functional-zoo's pre-activation ResNet-18 \(1 of 56; first: "
     r'affine_last.b\)'),
    # The first block of group 0 is not pre-activated in the export, nor in lpta.
    ('preactivation', 'at_functional_zoo', _preactivate_first_block,
     r'does not have \(2; first: group0.block0.affine0.a, group0.block0.affine0.b\)'),
    ('preactivation', 'at_functional_zoo',
     lambda s: s.update({'group1.block0.conv_dim': torch.zeros(128, 64, 3, 3)}),
     r'group1.block0.conv_dim has shape \(128, 64, 3, 3\) .*needs \(128, 64, 1, 1\)'),
])
def test_a_state_dict_of_another_network_is_refused_naming_what_differs(
    port_file, resnet_file, preactivation_file, tmp_path, source, format_name, edit, message):
  path = {'port': port_file, 'resnet': resnet_file, 'preactivation': preactivation_file}[source]
  if edit:
    path = _edited(path, tmp_path, edit)
  placement = 'before' if format_name == 'ltpa_pytorch_port' else None
  with pytest.raises(CheckpointError, match=message) as error:
    import_weights.import_weights(format_name, str(path), tmp_path / 'run', placement=placement)
  assert '\n' not in str(error.value)
  assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('content, message', [
    (None, 'no such file'), (b'not a pickle', 'cannot read .* as a PyTorch state_dict'),
    ([1, 2], 'holds a list that is not a state_dict')])
def test_a_file_that_is_not_a_state_dict_is_refused(tmp_path, content, message):
  path = tmp_path / 'net.pth'
  if isinstance(content, bytes):
    path.write_bytes(content)
  elif content is not None:
    torch.save(content, path)
  with pytest.raises(CheckpointError, match=message):
    import_weights.import_weights('at_functional_zoo', str(path), tmp_path / 'run')
  assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('format_name, options, message', [
    ('ltpa_pytorch_port', {}, 'needs --placement: before .* or after'),
    ('ltpa_pytorch_port', {'placement': 'inside'}, "--placement='inside' is not valid"),
    ('ltpa_pytorch_port', {'placement': 'after', 'normalisation': 'cosine'},
     "--normalisation='cosine' is not valid"),
    ('at_functional_zoo', {'placement': 'before'}, 'options of --format=ltpa_pytorch_port'),
    ('caffe', {}, "--format='caffe' is not a format"),
])
def test_bad_options_are_refused_before_reading_anything(tmp_path, format_name, options,
                                                          message):
  with pytest.raises(ConfigError, match=message):
    import_weights.import_weights(format_name, str(tmp_path / 'absent.pth'), tmp_path / 'run',
                                  **options)


def test_a_workdir_that_cannot_be_written_is_refused_before_reading(tmp_path, monkeypatch):
  (tmp_path / 'file').write_text('')
  with pytest.raises(ConfigError, match='is a file, not a folder'):
    import_weights.import_weights('at_functional_zoo', 'absent.pth', tmp_path / 'file' / 'run')
  monkeypatch.setattr(checkpoints.os, 'access', lambda *args: False)
  with pytest.raises(ConfigError, match='is not writable'):
    import_weights.import_weights('at_functional_zoo', 'absent.pth', tmp_path / 'run')
  assert sorted(tmp_path.iterdir()) == [tmp_path / 'file']


def test_without_pytorch_the_error_says_how_to_install_it(resnet_file, tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, 'torch', None)  # `import torch` fails as if not installed
  with pytest.raises(ConfigError, match='pip install torch$'):
    import_weights.import_weights('at_functional_zoo', str(resnet_file), tmp_path / 'run')


def test_command_errors_are_one_line(port_file, tmp_path):
  result = _run_command('--format=ltpa_pytorch_port', f'--checkpoint={port_file}',
                        f'--workdir={tmp_path / "run"}')
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1].startswith(
      'error: --format=ltpa_pytorch_port needs --placement: before (model1.py')
  assert 'Traceback' not in result.stderr
  assert not (tmp_path / 'run').exists()


def test_importing_the_command_defines_no_flag_that_predict_defines_too():
  from lpta import predict  # pylint: disable=g-import-not-at-top,unused-import
  assert 'format' not in flags.FLAGS  # import_weights' flags exist only when it runs
