"""Training speed of any config on synthetic data: compile time, images/s and peak memory.

  python -m lpta.benchmark --config=configs/cifar100_att3.py [--steps=20] [--config.a.b=v]
  python -m lpta.benchmark --config=configs/quickstart.py --against=pytorch [--rounds=5]
  python -m lpta.benchmark --config=configs/cifar100_att3.py --estimate=h100 [--epoch_examples=50000]

Runs the real jitted train step of lpta.train (augmentation, forward, backward, SGD update, BN
statistics) on random images of the config's data set shape, so no data set or TensorFlow is
needed. Compile time is the first call; images/s is the median over `--steps` timed steps after
two warm-up steps, each timed until the whole state is ready. Peak memory is the device's peak
bytes in use where the backend reports it (GPU, TPU), else the process's peak resident set (CPU).

--against=pytorch also builds the network's PyTorch twin (lpta.pytorch_equivalents: same layers,
same parameter count, the same step written as a PyTorch user would) and times both in
alternation: `--rounds` rounds of `--steps` steps of each, the side that goes first alternating,
so that a busy neighbour on a shared machine slows both. It prints both medians and
lpta ÷ PyTorch, the ratio of images/s (above 1: lpta is faster). PyTorch is needed only for this
(pip install torch); it runs on its default threads, lpta on its default devices.

--estimate=h100 runs nothing: it lowers the same train step and reads from it its FLOP count
(XLA's cost analysis: forward, backward and update of one global batch) and its number of
convolutions and matrix products (forward and backward). A step is estimated to take
FLOP / (utilisation · the chip's dense peak) + products · seconds per product, the second term
for what small layers lose to launches and memory traffic; ESTIMATES gives the fast and the slow
assumption, so the result is a range of images/s and, with --epoch_examples, of seconds per
epoch. It is an estimate for a chip this machine does not have, never a measurement; the paper
configs quote it where no GPU was lent.
"""

import sys

if __name__ == '__main__':
  from lpta import allocator  # pylint: disable=g-import-not-at-top
  allocator.restart_with_tcmalloc()  # as main.py does, so that the speed is main.py's

import json  # pylint: disable=g-import-not-at-top,wrong-import-position
import resource
import time

from absl import app
from absl import flags
import jax
from ml_collections import config_flags
import numpy as np

from lpta import command_line
from lpta import families
from lpta import objectives
from lpta import optimizers
from lpta import sharding
from lpta import train
from lpta.data import preprocessing
from lpta.errors import ConfigError, LptaError

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file (configs/*.py).')
_STEPS = flags.DEFINE_integer('steps', 20, 'Timed training steps (per side and round with '
                              '--against).', lower_bound=1)
_AGAINST = flags.DEFINE_enum('against', None, ['pytorch'],
                             'Also time the PyTorch twin of the network, in alternation.')
_ROUNDS = flags.DEFINE_integer('rounds', 5, 'Alternating rounds with --against.', lower_bound=1)
_ESTIMATE = flags.DEFINE_enum('estimate', None, ['h100', 'a100'],
                              'Estimate the speed on this chip from the FLOP count; runs nothing.')
_EPOCH_EXAMPLES = flags.DEFINE_integer('epoch_examples', None, 'Training images per epoch, for '
                                       "--estimate's seconds per epoch.", lower_bound=1)
_WARMUP_STEPS = 2
# Dense peak FLOP/s of one chip by the step's dtype (NVIDIA data sheets, SXM, no sparsity; XLA runs
# float32 convolutions and matrix products on the tensor cores as TF32).
PEAK_FLOPS = {'h100': {'float32': 494.7e12, 'bfloat16': 989.4e12},
              'a100': {'float32': 156e12, 'bfloat16': 312e12}}
# (share of peak reached, seconds per convolution or matrix product) for the fast and the slow
# estimate. Peak shares: MLPerf's ResNet-50 reaches about 17% of an H100's bfloat16 peak,
# airbench's small CIFAR net about 37% of an A100's; a small GPU kernel with its fused
# normalisation and activation takes some 10–100 µs.
ESTIMATES = ((0.3, 20e-6), (0.1, 50e-6))
# Synthetic inputs: uniform uint8 images, normalised with these statistics on both sides.
_MEAN, _STD = .5, .25
USAGE = command_line.usage(
    'python -m lpta.benchmark --config=CONFIG [flags] [--config.FIELD=VALUE ...]',
    "Times a config's real train step on synthetic images of its data set's shape (no data set "
    'needed): compile time, images/s (median over --steps steps) and peak memory, printed as '
    'JSON. --against=pytorch also times the same network written in PyTorch, in alternation, '
    'and prints the ratio of images/s. --estimate=h100 runs nothing and estimates the speed on '
    'that chip from the FLOP count.',
    ['python -m lpta.benchmark --config=configs/cifar100_att3.py --steps=20',
     'python -m lpta.benchmark --config=configs/quickstart.py --against=pytorch --rounds=5'],
    ['config', 'steps', 'against', 'rounds', 'estimate', 'epoch_examples'])


def peak_memory_bytes() -> tuple[int, str]:
  """(bytes, what was measured)."""
  stats = jax.devices()[0].memory_stats() or {}
  if 'peak_bytes_in_use' in stats:
    return stats['peak_bytes_in_use'], 'device peak'
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, 'host peak RSS'


def synthetic_batch(config, image_shape, num_classes: int) -> dict[str, np.ndarray]:
  """uint8 images [B, H, W, C] and int32 labels [B] of the global batch, fixed by seed 0."""
  rng = np.random.default_rng(0)
  return {'image': rng.integers(0, 256, (config.batch_size, *image_shape), dtype=np.uint8),
          'label': rng.integers(0, num_classes, config.batch_size).astype(np.int32)}


class LptaStep:
  """lpta's jitted train step on a fixed synthetic batch; each call runs one step to the end."""

  def __init__(self, config):
    if objectives.needs_teacher(config.transfer):
      raise ConfigError('lpta.benchmark times a network without a teacher; run it on a config '
                        'without one (e.g. the teacher\'s, configs/fashion_mnist_wrn.py).')
    mesh = sharding.make_mesh()
    family, source = train.validate_config(config, mesh.size)
    self.image_shape, self.num_classes = source.image_shape, source.num_classes
    model = family.build(self.num_classes, families.compute_dtype(config.half_precision))
    self.state = train.create_train_state(
        jax.random.key(0), model,
        optimizers.create_optimizer(config.optimizer, steps_per_epoch=1,
                                    num_epochs=config.num_epochs),
        self.image_shape, mesh, family)
    self.num_parameters = families.count_parameters(self.state.params)
    objective = family.objective(config, model, self.image_shape)
    self.trainer = train.Trainer(family, source, objective, num_train_steps=1, mesh=mesh)
    self.batch = self.trainer.to_global(
        synthetic_batch(config, self.image_shape, self.num_classes))
    channels = self.image_shape[-1:]
    self.normalisation = sharding.replicate(
        preprocessing.Normalisation(np.full(channels, _MEAN, np.float32),
                                    np.full(channels, _STD, np.float32)), mesh)
    self.metrics = sharding.replicate(
        train.train_metrics_class(objective.term_names).empty(), mesh)
    self.rng = sharding.replicate(jax.random.key(1), mesh)

  def __call__(self) -> None:
    self.state, self.metrics = self.trainer.train_step(
        self.state, self.metrics, self.batch, self.normalisation, self.rng, None)
    jax.block_until_ready((self.state, self.metrics))

  def compilations(self) -> int:
    return self.trainer.train_step._cache_size()  # pylint: disable=protected-access

  def counts(self) -> tuple[float, int]:
    """(XLA's FLOP count of one step on the global batch, its convolutions and matrix products,
    forward and backward), from the step lowered once; nothing runs."""
    lowered = self.trainer.train_step.lower(self.state, self.metrics, self.batch,
                                            self.normalisation, self.rng, None)
    text = lowered.as_text()
    return (float(lowered.cost_analysis()['flops']),
            text.count('stablehlo.convolution') + text.count('stablehlo.dot_general'))


def timed_steps(step, num_steps: int) -> list[float]:
  """Seconds of each of `num_steps` calls of `step`."""
  seconds = []
  for _ in range(num_steps):
    start = time.perf_counter()
    step()
    seconds.append(time.perf_counter() - start)
  return seconds


def first_and_warmup(step) -> float:
  """Runs the first call (compilation, for lpta) and the warm-up steps; the first call's seconds."""
  first = timed_steps(step, 1)[0]
  timed_steps(step, _WARMUP_STEPS)
  return first


def speed(step_seconds: list[float], batch_size: int) -> dict:
  median = float(np.median(step_seconds))
  return {'step_s_median': round(median, 4), 'step_s_min': round(min(step_seconds), 4),
          'step_s_max': round(max(step_seconds), 4),
          'images_per_s': round(batch_size / median, 1)}


def description(config, image_shape) -> dict:
  return {'device': f'{jax.device_count()} × {jax.devices()[0].device_kind}',
          'model': dict(config.model), 'image_shape': list(image_shape),
          'batch_size': config.batch_size,
          'dtype': 'bfloat16' if config.half_precision else 'float32'}


def memory() -> dict:
  peak, kind = peak_memory_bytes()
  return {'peak_memory_gib': round(peak / 2**30, 2), 'peak_memory_kind': kind}


def benchmark(config, num_steps: int) -> dict:
  """Times `num_steps` train steps of `config` at its global batch size."""
  step = LptaStep(config)
  compile_seconds = first_and_warmup(step)
  step_seconds = timed_steps(step, num_steps)
  return {**description(config, step.image_shape), 'parameters': step.num_parameters,
          'compile_and_first_step_s': round(compile_seconds, 2),
          **speed(step_seconds, config.batch_size), **memory(),
          'compilations_of_train_step': step.compilations()}


def estimate(config, chip: str, epoch_examples: int | None) -> dict:
  """The speed of `config`'s train step on `chip` estimated from its FLOP and product counts (see
  the module docstring), fast and slow: step seconds = FLOP / (u · peak) + products · t."""
  step = LptaStep(config)
  flops, products = step.counts()
  info = description(config, step.image_shape)
  del info['device']  # this machine's, not the chip's
  peak = PEAK_FLOPS[chip][info['dtype']]
  step_seconds = [flops / (share * peak) + products * seconds for share, seconds in ESTIMATES]
  result = {**info, 'parameters': step.num_parameters,
            'train_gflop_per_image': round(flops / config.batch_size / 1e9, 4),
            'products_per_step': products, 'chip': chip, 'peak_tflop_per_s': peak / 1e12,
            'assumed': [{'share_of_peak': share, 'seconds_per_product': seconds}
                        for share, seconds in ESTIMATES],
            'estimated_images_per_s': [round(config.batch_size / s) for s in step_seconds]}
  if epoch_examples:
    result['epoch_examples'] = epoch_examples
    result['estimated_epoch_s'] = [float(f'{epoch_examples / config.batch_size * s:.3g}')
                                   for s in step_seconds]
  return result


def check_pytorch_comparison(config) -> None:
  """Refuses, before anything is compiled, a comparison that cannot run."""
  try:
    import torch  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError as error:
    raise ConfigError('--against=pytorch needs PyTorch: pip install torch') from error
  if config.half_precision:
    raise ConfigError('--against=pytorch compares float32 steps; '
                      'set --config.half_precision=False.')
  if config.optimizer.name != 'sgd':
    raise ConfigError('--against=pytorch compares SGD steps; set --config.optimizer.name=sgd.')


def pytorch_step(config, image_shape, num_classes: int):
  """(one step of the PyTorch twin on the same synthetic batch, its parameter count)."""
  import torch  # pylint: disable=g-import-not-at-top
  from lpta import pytorch_equivalents  # pylint: disable=g-import-not-at-top
  torch.manual_seed(0)
  network = pytorch_equivalents.build(config.model, image_shape, num_classes)
  channels = image_shape[-1]
  train_step = pytorch_equivalents.TrainStep(network, config, [_MEAN] * channels,
                                             [_STD] * channels)
  batch = synthetic_batch(config, image_shape, num_classes)
  images = torch.from_numpy(batch['image'])
  labels = torch.from_numpy(batch['label']).long()
  return (lambda: train_step(images, labels)), pytorch_equivalents.count_parameters(network)


def benchmark_against_pytorch(config, num_steps: int, num_rounds: int) -> dict:
  """lpta's step and its PyTorch twin's, `num_rounds` alternating rounds of `num_steps` each."""
  check_pytorch_comparison(config)
  lpta_step = LptaStep(config)
  compile_seconds = first_and_warmup(lpta_step)
  lpta_memory = memory()  # before PyTorch allocates anything
  torch_step, torch_parameters = pytorch_step(config, lpta_step.image_shape,
                                              lpta_step.num_classes)
  if torch_parameters != lpta_step.num_parameters:
    raise LptaError(f'the PyTorch twin has {torch_parameters:,} parameters and lpta\'s network '
                    f'{lpta_step.num_parameters:,}: they are not the same network.')
  torch_first_seconds = first_and_warmup(torch_step)
  seconds = {'lpta': [], 'pytorch': []}
  steps = {'lpta': lpta_step, 'pytorch': torch_step}
  for round_index in range(num_rounds):
    order = ('lpta', 'pytorch') if round_index % 2 == 0 else ('pytorch', 'lpta')
    for name in order:
      seconds[name] += timed_steps(steps[name], num_steps)
  lpta_speed = speed(seconds['lpta'], config.batch_size)
  torch_speed = speed(seconds['pytorch'], config.batch_size)
  import torch  # pylint: disable=g-import-not-at-top
  return {
      **description(config, lpta_step.image_shape), 'parameters': lpta_step.num_parameters,
      'rounds': num_rounds, 'steps_per_round': num_steps,
      'lpta': {'compile_and_first_step_s': round(compile_seconds, 2), **lpta_speed,
               **lpta_memory, 'compilations_of_train_step': lpta_step.compilations()},
      'pytorch': {'version': torch.__version__, 'threads': torch.get_num_threads(),
                  'first_step_s': round(torch_first_seconds, 2), **torch_speed,
                  'process_peak_memory_gib': memory()['peak_memory_gib']},
      'lpta_over_pytorch': round(lpta_speed['images_per_s'] / torch_speed['images_per_s'], 2),
  }


def main(argv):
  command_line.refuse_arguments(argv, 'python -m lpta.benchmark')
  command_line.quiet_library_info()
  try:
    if _EPOCH_EXAMPLES.value and not _ESTIMATE.value:
      raise ConfigError('--epoch_examples is read by --estimate only; add --estimate=h100.')
    if _ESTIMATE.value and _AGAINST.value:
      raise ConfigError('--estimate runs nothing and --against times two steps; give one.')
    if _ESTIMATE.value:
      result = estimate(_CONFIG.value, _ESTIMATE.value, _EPOCH_EXAMPLES.value)
    elif _AGAINST.value:
      result = benchmark_against_pytorch(_CONFIG.value, _STEPS.value, _ROUNDS.value)
    else:
      result = benchmark(_CONFIG.value, _STEPS.value)
  except LptaError as error:
    sys.exit(f'error: {error}')
  print(json.dumps(result, indent=1))


if __name__ == '__main__':
  app.run(main, flags_parser=command_line.flags_parser(
      USAGE, _CONFIG, missing_config='give --config=<a config file>, e.g. python -m '
      'lpta.benchmark --config=configs/quickstart.py.'))
