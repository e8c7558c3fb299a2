"""Imports the seeds' released PyTorch weights as lpta runs.

  python -m lpta.import_weights --format=ltpa_pytorch_port --placement=before|after \
      [--normalisation=softmax|sigmoid] --checkpoint=net.pth --workdir=runs/port_before
  python -m lpta.import_weights --format=at_functional_zoo \
      --checkpoint=resnet-34-export.pth --workdir=runs/resnet34_fb
  python -m lpta.import_weights --format=at_functional_zoo \
      --checkpoint=resnet-18-at-export.pth --workdir=runs/resnet18_at

Run it from the repository root: the run gets the config of the matching experiment in configs/.
It reads a PyTorch state_dict (`torch.load(..., weights_only=True)`: tensors, never code; PyTorch
is imported here only, `pip install torch`), maps every tensor to its place in lpta's network,
and writes into a new --workdir what training writes (lpta.checkpoints): params, batch
statistics, the input statistics the seed normalised with, the class names, the config (also as
config.json), at step 0 and without optimiser state; `imported_from.json` records the file and
its SHA-256. lpta.load_run, `python -m lpta.predict`, `python -m lpta.evaluate`, a teacher
(config.teacher.workdir) and fine-tuning (config.init_from.workdir, in a new workdir) read it;
main.py does not resume it, having no optimiser state to resume.

Layouts: PyTorch convolution kernels are [out, in, kh, kw] (OIHW) and Flax's [kh, kw, in, out]
(HWIO); PyTorch linear weights [out, in], Flax Dense kernels [in, out]; a BatchNorm's weight,
bias, running_mean and running_var are Flax's scale and bias (params) and mean and var
(batch_stats); num_batches_tracked is not used. Inputs are NCHW there and NHWC here.

--format=ltpa_pytorch_port: SaoYan/LearnToPayAttention's CIFAR-100 networks,
model1.AttnVGG_before and model2.AttnVGG_after; their train.py saves the state_dict of an
nn.DataParallel, whose `module.` prefix is dropped. The state_dict cannot tell 'before' from
'after' (same tensors) nor the normalize_attn flag: give --placement, and --normalisation
(default softmax: the port's README trains with --normalize_attn). The lpta network is
configs/cifar100_att3_{placement}.py: attention_vgg, att3, 'pc' without bias, l projected up,
concat head without BatchNorm, no dropout, BN epsilon 1e-5.
  conv_block{1..6}.op.{i}    ConvBlock(n convs): [Conv2d 3×3, BatchNorm2d, ReLU] × n, and a
                             MaxPool2d after each conv of block 6, so op.0/op.1 (conv/BN of its
                             first conv), op.3/op.4 (op.4/op.5 in block 6), ... -> the 15 convs
                             backbone/conv{1..15}/{Conv_0, BatchNorm_0}: VGG16_CONVS + EXTRA_CONVS
                             with pools after convs 7, 10, 13 (between blocks), 14 and 15
  dense.weight [512, 512, 1, 1] (Conv2d with kernel 32/32 = 1 on the 1×1 map) and dense.bias
                             -> global/kernel [512, 512] and global/bias: g
  projector.op.weight [512, 256, 1, 1]  -> attention1/project_local/kernel [1, 1, 256, 512]
  attn{s}.op.weight [1, 512, 1, 1]      -> attention{s}/u/kernel [1, 1, 512, 1]
  classify.weight [100, 1536], .bias     -> classifier/kernel [1536, 100], classifier/bias
Normalisation: the port's mean (0.5071, 0.4867, 0.4408) and std (0.2675, 0.2565, 0.2761);
classes: CIFAR-100's fine labels in TFDS (and torchvision) order.

--format=at_functional_zoo: szagoruyko/functional-zoo's "folded" ImageNet ResNets: the
fb.resnet.torch ResNet-18 and ResNet-34 (resnet-18-export.pth, resnet-34-export.pth; the ResNet-34
is the teacher of attention-transfer's imagenet.py), and the AT paper's pre-activation ResNet-18
student (resnet-18-at-export.pth, released in the AT code's README), told apart by its `affine*`
tensors. The depth is read from the number of blocks per group; the network is
configs/imagenet_resnet.py with that depth (lpta.models.resnet.ResNet), and
config.model.preactivation = True for the pre-activation export.

The folded ResNet-18/34 are post-activation basic-block ResNets (torchvision's layout) whose
BatchNorms were folded into the convolutions: each conv has a bias and no BN follows it; the
1×1 stride-2 shortcut `conv_dim` has no bias.
  conv0.weight [64, 3, 7, 7]                        -> stem/kernel
  group{g}.block{b}.conv{0,1}.weight [o, i, 3, 3]  -> group{g}_block{b}/conv{0,1}/kernel
  group{g}.block0.conv_dim.weight [o, i, 1, 1]     -> group{g}_block0/shortcut/kernel (g > 0)
  fc.weight [1000, 512], fc.bias                    -> classifier/kernel [512, 1000], bias
lpta's convolutions have no bias and each is followed by a BatchNorm, so every BatchNorm is set
to the identity plus a shift: scale 1, mean 0, var 1 − ε (so var + ε = 1 exactly in float32),
bias = the folded conv bias (conv{i}.bias -> bn{i}, conv0.bias -> stem_bn; 0 for shortcut_bn).
Then BN(conv(x)) = conv(x) + bias: the exported network exactly, with no new model.

The ResNet-18-AT export (functional-zoo's resnet-18-at-export.ipynb defines it) is a
pre-activation ResNet whose BatchNorms were folded into per-channel scale-and-shift layers
`affine` (x·a + b), each before a ReLU; its convs have no bias and no `.weight` suffix:
  conv0 [64, 3, 7, 7], affine0.{a,b} [64]      -> stem/kernel, stem_bn/{scale,bias}: conv 7×7/2,
                                                  affine, ReLU, max-pool 3×3/2
  group{g}.block{b}.affine0.{a,b} [i]           -> group{g}_block{b}/bn0/{scale,bias}: the block's
                                                  pre-activation; group0.block0 has none (the
                                                  stem's affine, ReLU and max-pool stand for it)
  group{g}.block{b}.conv0 [o, i, 3, 3]          -> group{g}_block{b}/conv0/kernel (stride 2 in
                                                  block 0 of groups 1-3)
  group{g}.block{b}.affine1.{a,b} [o]           -> group{g}_block{b}/bn1/{scale,bias}
  group{g}.block{b}.conv1 [o, o, 3, 3]          -> group{g}_block{b}/conv1/kernel
  group{g}.block0.conv_dim [o, i, 1, 1]         -> group{g}_block0/shortcut/kernel (g > 0; 1×1/2
                                                  on the pre-activated input, as lpta's)
  affine_last.{a,b} [512]                       -> head_bn/{scale,bias}: affine, ReLU before the
                                                  pool
  fc.weight [1000, 512], fc.bias                -> classifier/kernel [512, 1000], bias
Each affine becomes the BatchNorm at its place with scale a, shift b, mean 0 and var 1 − ε, so
BN(x) = x·a + b; a group's output is its last residual sum, before any affine (lpta's
aux['group_activations'], the AT code's o_g0..o_g3): 11,687,720 parameters.

Both exports end with avg_pool2d(7), which on the 7×7 map of a 224² image is lpta's global mean.
Normalisation: ImageNet's mean and std (lpta.data.streamed, as the AT code); classes: the 1000
ImageNet synset ids in TFDS's order (sorted, as the seeds' ImageFolder), read from the
tensorflow_datasets package.
"""

import hashlib
import importlib
import importlib.util
import io
import json
import os
import pathlib
import sys
from typing import Any, Callable, NamedTuple

from absl import app
from absl import flags
from etils import epath
import flax.traverse_util
import jax.numpy as jnp
import ml_collections
import numpy as np

from lpta import checkpoints
from lpta import command_line
from lpta import data
from lpta import families
from lpta.data import preprocessing
from lpta.data import streamed
from lpta.errors import CheckpointError, ConfigError, LptaError
from lpta.models import attention
from lpta.models import resnet
from lpta.models import vgg

FORMATS = ('ltpa_pytorch_port', 'at_functional_zoo')
DESCRIPTIONS = {
    'ltpa_pytorch_port': "the PyTorch port's AttnVGG_before/AttnVGG_after (CIFAR-100)",
    'at_functional_zoo': "functional-zoo's folded ImageNet ResNet-18/34 or ResNet-18-AT",
}
IMPORT_STEP = 0  # the step of the imported checkpoint: lpta trained it for no step

# SaoYan/LearnToPayAttention train.py: transforms.Normalize of CIFAR-100.
PORT_MEAN = (0.5071, 0.4867, 0.4408)
PORT_STD = (0.2675, 0.2565, 0.2761)
# (convolutions, max-pool after each) of the port's conv_block1..6.
PORT_BLOCKS = ((2, False), (2, False), (3, False), (3, False), (3, False), (2, True))
# CIFAR-100's fine labels in the order of the archive's fine_label_names.txt (alphabetical), which
# TFDS and torchvision keep.
CIFAR100_CLASSES = (
    'apple', 'aquarium_fish', 'baby', 'bear', 'beaver', 'bed', 'bee', 'beetle', 'bicycle',
    'bottle', 'bowl', 'boy', 'bridge', 'bus', 'butterfly', 'camel', 'can', 'castle',
    'caterpillar', 'cattle', 'chair', 'chimpanzee', 'clock', 'cloud', 'cockroach', 'couch',
    'crab', 'crocodile', 'cup', 'dinosaur', 'dolphin', 'elephant', 'flatfish', 'forest', 'fox',
    'girl', 'hamster', 'house', 'kangaroo', 'keyboard', 'lamp', 'lawn_mower', 'leopard', 'lion',
    'lizard', 'lobster', 'man', 'maple_tree', 'motorcycle', 'mountain', 'mouse', 'mushroom',
    'oak_tree', 'orange', 'orchid', 'otter', 'palm_tree', 'pear', 'pickup_truck', 'pine_tree',
    'plain', 'plate', 'poppy', 'porcupine', 'possum', 'rabbit', 'raccoon', 'ray', 'road',
    'rocket', 'rose', 'sea', 'seal', 'shark', 'shrew', 'skunk', 'skyscraper', 'snail', 'snake',
    'spider', 'squirrel', 'streetcar', 'sunflower', 'sweet_pepper', 'table', 'tank',
    'telephone', 'television', 'tiger', 'tractor', 'train', 'trout', 'tulip', 'turtle',
    'wardrobe', 'whale', 'willow_tree', 'wolf', 'woman', 'worm')
# Where tensorflow_datasets keeps ImageNet's label file (newer and older layouts).
_IMAGENET_LABEL_FILES = ('datasets/imagenet2012/labels.txt',
                         'image_classification/imagenet2012_labels.txt')
# The epsilon of lpta.models.resnet's BatchNorms, which the folded biases pass through.
RESNET_BN_EPSILON = resnet.batch_norm(False, jnp.float32, 'bn').epsilon


class Layout(NamedTuple):
  """How one PyTorch tensor becomes one Flax array: `to_flax(array)`, and the PyTorch shape
  that a Flax shape needs (`torch_shape(flax_shape)`, for checking before converting)."""
  to_flax: Callable[[np.ndarray], np.ndarray]
  torch_shape: Callable[[tuple[int, ...]], tuple[int, ...]]


LAYOUTS = {
    'same': Layout(lambda a: a, lambda s: tuple(s)),
    # Conv2d [out, in, kh, kw] -> nn.Conv [kh, kw, in, out].
    'conv': Layout(lambda a: a.transpose(2, 3, 1, 0), lambda s: (s[3], s[2], s[0], s[1])),
    # Linear [out, in] -> nn.Dense [in, out].
    'dense': Layout(lambda a: a.T, lambda s: (s[1], s[0])),
    # A 1×1 Conv2d on a 1×1 map [out, in, 1, 1] -> nn.Dense [in, out].
    'conv_as_dense': Layout(lambda a: a[:, :, 0, 0].T, lambda s: (s[1], s[0], 1, 1)),
}


class Entry(NamedTuple):
  """One state_dict key, the path of its Flax array ('params' or 'batch_stats' first), and the
  name of its Layout."""
  key: str
  path: tuple[str, ...]
  layout: str = 'same'


def _batch_norm_entries(prefix: str, module: tuple[str, ...]) -> list[Entry]:
  """A BatchNorm2d's four tensors -> scale, bias (params) and mean, var (batch_stats)."""
  return [Entry(f'{prefix}.weight', ('params', *module, 'scale')),
          Entry(f'{prefix}.bias', ('params', *module, 'bias')),
          Entry(f'{prefix}.running_mean', ('batch_stats', *module, 'mean')),
          Entry(f'{prefix}.running_var', ('batch_stats', *module, 'var'))]


def port_entries() -> list[Entry]:
  """Every tensor of the port's AttnVGG (att3, with attention) and its place in lpta's
  attention_vgg (the module docstring's table)."""
  entries, conv = [], 0
  for block, (num_convs, pools) in enumerate(PORT_BLOCKS, start=1):
    layers_per_conv = 4 if pools else 3  # Conv2d, BatchNorm2d, ReLU (, MaxPool2d)
    for index in range(num_convs):
      conv += 1
      first = f'conv_block{block}.op.{index * layers_per_conv}'
      module = ('backbone', f'conv{conv}')
      entries += [Entry(f'{first}.weight', ('params', *module, 'Conv_0', 'kernel'), 'conv'),
                  Entry(f'{first}.bias', ('params', *module, 'Conv_0', 'bias'))]
      entries += _batch_norm_entries(f'conv_block{block}.op.{index * layers_per_conv + 1}',
                                     (*module, 'BatchNorm_0'))
  entries += [Entry('dense.weight', ('params', 'global', 'kernel'), 'conv_as_dense'),
              Entry('dense.bias', ('params', 'global', 'bias')),
              Entry('projector.op.weight',
                    ('params', 'attention1', 'project_local', 'kernel'), 'conv')]
  entries += [Entry(f'attn{level}.op.weight', ('params', f'attention{level}', 'u', 'kernel'),
                    'conv') for level in (1, 2, 3)]
  entries += [Entry('classify.weight', ('params', 'classifier', 'kernel'), 'dense'),
              Entry('classify.bias', ('params', 'classifier', 'bias'))]
  return entries


def functional_zoo_entries(stage_sizes, preactivation: bool) -> list[Entry]:
  """Every tensor of a functional-zoo ResNet with `stage_sizes` blocks per group and its place
  in lpta's ResNet (the module docstring's tables). Folded: each conv bias becomes the shift of
  the BatchNorm after that conv. Pre-activation: each affine (a, b) becomes the scale and shift
  of the BatchNorm at its place."""

  def conv(key: str, module: tuple[str, ...]) -> Entry:
    return Entry(key if preactivation else f'{key}.weight', ('params', *module, 'kernel'),
                 'conv')

  def norm(source: str, module: tuple[str, ...]) -> list[Entry]:
    """The tensors that set BatchNorm `module`: affine `source`'s a and b, or conv `source`'s
    folded bias."""
    if preactivation:
      return [Entry(f'{source}.a', ('params', *module, 'scale')),
              Entry(f'{source}.b', ('params', *module, 'bias'))]
    return [Entry(f'{source}.bias', ('params', *module, 'bias'))]

  setter = 'affine' if preactivation else 'conv'  # what sets the BatchNorm bn{i} of a block
  entries = [conv('conv0', ('stem',)), *norm(f'{setter}0', ('stem_bn',))]
  for group, num_blocks in enumerate(stage_sizes):
    for block in range(num_blocks):
      prefix, module = f'group{group}.block{block}', f'group{group}_block{block}'
      for index in (0, 1):
        entries.append(conv(f'{prefix}.conv{index}', (module, f'conv{index}')))
        # The pre-activated group0.block0 reads the stem's activated output: no affine0.
        if not (preactivation and index == 0 and group == 0 and block == 0):
          entries += norm(f'{prefix}.{setter}{index}', (module, f'bn{index}'))
      if group > 0 and block == 0:
        entries.append(conv(f'{prefix}.conv_dim', (module, 'shortcut')))
  if preactivation:
    entries += norm('affine_last', ('head_bn',))
  entries += [Entry('fc.weight', ('params', 'classifier', 'kernel'), 'dense'),
              Entry('fc.bias', ('params', 'classifier', 'bias'))]
  return entries


def identity_batch_norm(path: tuple[str, ...]) -> float | None:
  """The value of a BatchNorm leaf that no tensor sets, as the identity: scale 1, bias 0, mean
  0, var 1 − ε, so that it computes (x − 0)/√(var + ε)·scale + bias = x·scale + bias (None for
  any other leaf)."""
  values = {'scale': 1., 'bias': 0., 'mean': 0., 'var': 1. - RESNET_BN_EPSILON}
  return values.get(path[-1]) if 'bn' in path[-2] else None


def read_state_dict(checkpoint: str) -> tuple[dict[str, np.ndarray], str]:
  """({key: array} of the PyTorch file, its SHA-256). Keys lose an nn.DataParallel `module.`
  prefix; floating tensors become float32 numpy arrays."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise ConfigError('reading PyTorch weights needs PyTorch, which is not installed here: '
                      'pip install torch') from error
  try:
    content = epath.Path(checkpoint).read_bytes()
  except FileNotFoundError as error:
    raise CheckpointError(f'--checkpoint={checkpoint}: no such file; give the .pth file of the '
                          'released weights.') from error
  try:
    loaded = torch.load(io.BytesIO(content), map_location='cpu', weights_only=True)
  except Exception as error:  # pylint: disable=broad-except
    reason = (str(error).strip().splitlines() or [''])[0]
    raise CheckpointError(f'cannot read {checkpoint} as a PyTorch state_dict ({reason}); give '
                          'the released .pth file (a dict of tensors, not a pickled model).'
                          ) from error
  if not isinstance(loaded, dict) or not all(torch.is_tensor(v) for v in loaded.values()):
    raise CheckpointError(f'{checkpoint} holds a {type(loaded).__name__} that is not a '
                          'state_dict (a dict of tensors); give the released .pth file.')
  state = {}
  for key, tensor in loaded.items():
    tensor = tensor.detach().cpu()
    state[key.removeprefix('module.')] = (
        tensor.float() if tensor.is_floating_point() else tensor).numpy()
  return state, hashlib.sha256(content).hexdigest()


def layout_of(keys) -> str | None:
  """The format whose layout a state_dict's keys have, or None."""
  keys = set(keys)
  if any(key.startswith('conv_block') for key in keys):
    return 'ltpa_pytorch_port'
  if 'fc.weight' in keys and keys & {'conv0', 'conv0.weight'}:
    return 'at_functional_zoo'
  return None


def is_preactivation(keys) -> bool:
  """Whether functional-zoo ResNet keys are the pre-activation ResNet-18-AT's (`affine*`
  tensors) rather than a folded post-activation ResNet's."""
  return any(key.startswith('affine') for key in keys)


def _refuse_other_layout(state, checkpoint: str, format_name: str) -> None:
  layout = layout_of(state)
  if layout is not None and layout != format_name:
    raise CheckpointError(f'{checkpoint} holds {DESCRIPTIONS[layout]}, not '
                          f'{DESCRIPTIONS[format_name]}; use --format={layout}.')


def convert(state: dict[str, np.ndarray], entries: list[Entry], abstract_variables,
            checkpoint: str, network: str,
            default: Callable[[tuple[str, ...]], Any] = lambda path: None) -> dict[str, Any]:
  """The Flax variables {'params', 'batch_stats'} of `abstract_variables`' structure (a tree of
  ShapeDtypeStruct) from `state`, placed by `entries`; leaves that no entry sets take
  `default(path)`.

  Raises:
    CheckpointError: a tensor is missing, unexpected or of another shape than `network` needs.
  """
  expected = {entry.key for entry in entries}
  missing = [entry.key for entry in entries if entry.key not in state]
  unexpected = sorted(key for key in set(state) - expected
                      if not key.endswith('num_batches_tracked'))
  if missing:
    raise CheckpointError(
        f'{checkpoint} lacks tensors of {network} ({len(missing)} of {len(entries)}; first: '
        f'{", ".join(missing[:3])}); give a complete state_dict of that network.')
  if unexpected:
    raise CheckpointError(
        f'{checkpoint} has tensors that {network} does not have ({len(unexpected)}; first: '
        f'{", ".join(unexpected[:3])}); give a state_dict of that network and nothing else.')
  shapes = flax.traverse_util.flatten_dict(abstract_variables)
  stale = [entry.key for entry in entries if entry.path not in shapes]
  if stale:
    raise RuntimeError(f'{", ".join(stale)} has no place in the lpta model: the import table '
                       'is out of date with it (a bug).')
  flat = {}
  for entry in entries:
    layout, array = LAYOUTS[entry.layout], state[entry.key]
    needed = layout.torch_shape(shapes[entry.path].shape)
    if array.shape != needed:
      raise CheckpointError(f'{entry.key} has shape {tuple(array.shape)} in {checkpoint}; '
                            f'{network} needs {needed}; give the weights of that network.')
    flat[entry.path] = layout.to_flax(array)
  for path, shape in shapes.items():
    if path not in flat:
      value = default(path)
      if value is None:
        raise RuntimeError(f'no tensor sets {"/".join(path)}: the import table is out of date '
                           'with the lpta model (a bug).')
      flat[path] = np.full(shape.shape, value)
  return flax.traverse_util.unflatten_dict(
      {path: jnp.asarray(value, jnp.float32) for path, value in flat.items()})


def folded_resnet_depth(state, checkpoint: str) -> int:
  """18 or 34, from the blocks per group (`group{g}.block{b}.conv0`, with `.weight` in the
  post-activation exports) of a functional-zoo ResNet."""
  stage_sizes = tuple(
      sum(1 for key in state if key.startswith(f'group{group}.block')
          and key.endswith(('.conv0', '.conv0.weight'))) for group in range(4))
  for depth, sizes in resnet.RESNET_STAGE_SIZES.items():
    if sizes == stage_sizes and depth not in resnet.RESNET_BOTTLENECK_DEPTHS:
      return depth
  raise CheckpointError(f'{checkpoint} has {stage_sizes} blocks per group; the functional-zoo '
                        'ResNets lpta reads have (2, 2, 2, 2) (ResNet-18) or (3, 4, 6, 3) '
                        '(ResNet-34).')


def experiment_config(name: str) -> ml_collections.ConfigDict:
  """get_config() of configs/<name>.py."""
  try:
    module = importlib.import_module(f'configs.{name}')
  except ModuleNotFoundError as error:
    raise ConfigError(f'cannot find configs/{name}.py from {os.getcwd()}; run python -m '
                      'lpta.import_weights from the repository root.') from error
  return module.get_config()


def imagenet_class_names() -> tuple[str, ...]:
  """The 1000 ImageNet synset ids in TFDS's label order, read from the tensorflow_datasets
  package's files without importing it (nor TensorFlow)."""
  spec = importlib.util.find_spec('tensorflow_datasets')
  for folder in (spec.submodule_search_locations or []) if spec else []:
    for relative in _IMAGENET_LABEL_FILES:
      path = pathlib.Path(folder, relative)
      if path.is_file():
        return tuple(path.read_text().split())
  raise ConfigError('cannot find ImageNet\'s class names in tensorflow_datasets; install the '
                    'version in requirements.txt (pip install -r requirements.txt).')


def check_workdir(workdir: epath.Path) -> None:
  """Refuses, changing nothing, a workdir that holds a run, or a local one that cannot be made
  or written (lpta.checkpoints.check_workdir)."""
  if (workdir / 'checkpoints').exists():
    raise CheckpointError(f'--workdir={workdir} already holds a run ({workdir}/checkpoints); '
                          'nothing was changed: import into a new --workdir.')
  checkpoints.check_workdir(workdir)


class _ImportedState(NamedTuple):
  """What Checkpointer.save reads of a TrainState; an imported run has no optimiser state."""
  params: Any
  batch_stats: Any
  opt_state: Any = ()


def import_weights(format_name: str, checkpoint: str, workdir: epath.PathLike, *,
                   placement: str | None = None, normalisation: str | None = None) -> str:
  """Writes the weights in `checkpoint` (a PyTorch .pth of `format_name`) as an lpta run in
  `workdir`, which must not hold a run yet; returns its checkpoint folder.

  placement ('before' or 'after') and normalisation ('softmax', the default, or 'sigmoid') are
  the port's model file and normalize_attn flag, for 'ltpa_pytorch_port' only.

  Raises:
    ConfigError: a bad option, or a workdir that cannot be written.
    CheckpointError: a file that is not a state_dict of that format, or a workdir with a run.
  """
  if format_name not in FORMATS:
    raise ConfigError(f'--format={format_name!r} is not a format; use one of '
                      f'{", ".join(FORMATS)}.')
  if format_name == 'ltpa_pytorch_port':
    if placement not in vgg.PLACEMENTS:
      raise ConfigError(
          ('--format=ltpa_pytorch_port needs --placement' if placement is None else
           f'--placement={placement!r} is not valid') + ': before (model1.py, AttnVGG_before) '
          'or after (model2.py, AttnVGG_after); the weights do not say where attention sits.')
    normalisation = normalisation or 'softmax'
    if normalisation not in attention.NORMALISATIONS:
      raise ConfigError(f'--normalisation={normalisation!r} is not valid; use softmax (the '
                        'port\'s --normalize_attn) or sigmoid (without it).')
  elif placement or normalisation:
    raise ConfigError('--placement and --normalisation are options of '
                      '--format=ltpa_pytorch_port only; leave them out.')
  workdir = epath.Path(workdir)
  check_workdir(workdir)
  state, sha256 = read_state_dict(checkpoint)
  _refuse_other_layout(state, checkpoint, format_name)
  if format_name == 'ltpa_pytorch_port':
    config = experiment_config(f'cifar100_att3_{placement}')
    config.model.normalisation = normalisation
    class_names, statistics = CIFAR100_CLASSES, (PORT_MEAN, PORT_STD)
    entries, default = port_entries(), lambda path: None
    network = DESCRIPTIONS[format_name]
  else:
    config = experiment_config('imagenet_resnet')
    config.model.depth = folded_resnet_depth(state, checkpoint)
    preactivation = config.model.preactivation = is_preactivation(state)
    class_names, statistics = imagenet_class_names(), (streamed.MEAN, streamed.STD)
    entries = functional_zoo_entries(resnet.RESNET_STAGE_SIZES[config.model.depth],
                                     preactivation)
    default = identity_batch_norm
    network = (f"functional-zoo's {'pre-activation' if preactivation else 'folded'} "
               f'ResNet-{config.model.depth}')
  image_shape = data.get(config.data).image_shape
  model = families.create_model(config.model, len(class_names), config.half_precision)
  abstract, _ = families.abstract_variables_and_outputs(model, image_shape)
  variables = convert(state, entries, abstract, checkpoint, network, default)
  dataset = {'name': config.data.name, 'image_shape': list(image_shape),
             'class_names': list(class_names)}
  mean, std = (jnp.asarray(values, jnp.float32) for values in statistics)
  checkpointer = checkpoints.Checkpointer(workdir / 'checkpoints', keep_latest=1, keep_best=0)
  try:
    checkpointer.save(IMPORT_STEP, _ImportedState(variables['params'],
                                                  variables.get('batch_stats', {})),
                      config, dataset, preprocessing.Normalisation(mean, std))
  finally:
    checkpointer.close()
  checkpoints.write_config_json(workdir, config)
  source = checkpoint if '://' in checkpoint else os.path.abspath(checkpoint)
  provenance = {'format': format_name, 'checkpoint': source, 'sha256': sha256,
                'placement': placement, 'normalisation': normalisation}
  (workdir / 'imported_from.json').write_text(json.dumps(provenance, indent=1) + '\n')
  return os.fspath(workdir / 'checkpoints' / str(IMPORT_STEP))


def define_flags() -> None:
  """The command's flags; defined only when it runs, so that importing this module next to
  lpta.predict (which has its own --workdir) defines no flag twice."""
  flags.DEFINE_string('format', None, f'Layout of the weights: {", ".join(FORMATS)}.')
  flags.DEFINE_string('checkpoint', None, 'The PyTorch .pth file (a state_dict).')
  flags.DEFINE_string('workdir', None, 'A new workdir (path or URL) for the run.')
  flags.DEFINE_string('placement', None,
                      "ltpa_pytorch_port: 'before' (AttnVGG_before) or 'after'.")
  flags.DEFINE_string('normalisation', None,
                      "ltpa_pytorch_port: 'softmax' (--normalize_attn; default) or 'sigmoid'.")


def main(argv):
  command_line.refuse_arguments(argv, 'python -m lpta.import_weights')
  command_line.quiet_library_info()
  args = flags.FLAGS
  if not (args.format and args.checkpoint and args.workdir):
    sys.exit('error: give --format, --checkpoint and --workdir, e.g. python -m '
             'lpta.import_weights --format=ltpa_pytorch_port --placement=before '
             '--checkpoint=net.pth --workdir=runs/port_before')
  try:
    folder = import_weights(args.format, args.checkpoint, args.workdir,
                            placement=args.placement, normalisation=args.normalisation)
  except LptaError as error:
    sys.exit(f'error: {error}')
  print(f'Imported {args.checkpoint} into {folder}. Use it with: python -m lpta.predict '
        f'--workdir={args.workdir} IMAGE, python -m lpta.evaluate --workdir={args.workdir} '
        f'--eval=..., or as config.init_from.workdir / config.teacher.workdir.')


def usage_text() -> str:
  """The --help text (after define_flags)."""
  formats = command_line.table([(name, DESCRIPTIONS[name]) for name in FORMATS])
  return command_line.usage(
      'python -m lpta.import_weights --format=FORMAT --checkpoint=FILE.pth --workdir=NEW_DIR '
      '[flags]',
      "Imports released PyTorch weights (a state_dict) as an lpta run: the tensors are mapped "
      "to lpta's network and written, with the config of the matching experiment in configs/, "
      'the input statistics and the class names, as a checkpoint at step 0 in a new workdir, '
      'which lpta.predict, lpta.evaluate, lpta.load_run, fine-tuning and teachers read. Run it '
      'from the repository root; it needs PyTorch (pip install torch). Where each tensor goes is '
      "described in lpta/import_weights.py's docstring; docs/using_runs.md shows how to use runs.",
      ['python -m lpta.import_weights --format=ltpa_pytorch_port --placement=before '
       '--checkpoint=net.pth --workdir=runs/port_before',
       'python -m lpta.import_weights --format=at_functional_zoo '
       '--checkpoint=resnet-34-export.pth --workdir=runs/resnet34_fb'],
      ['format', 'checkpoint', 'workdir', 'placement', 'normalisation'],
      'Formats:\n' + formats)


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=command_line.flags_parser(usage_text()))
