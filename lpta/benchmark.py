"""Training speed of any config on synthetic data: compile time, images/s and peak memory.

  python -m lpta.benchmark --config=configs/cifar100_att3.py [--steps=20] [--config.a.b=v]

Runs the real jitted train step of lpta.train (augmentation, forward, backward, SGD update, BN
statistics) on random images of the config's data set shape, so no data set or TensorFlow is
needed. Compile time is the first call; images/s is the median over `--steps` timed steps after
two warm-up steps, each timed until the whole state is ready. Peak memory is the device's peak
bytes in use where the backend reports it (GPU, TPU), else the process's peak resident set (CPU).
"""

import json
import resource
import sys
import time

from absl import app
from absl import flags
import jax
from ml_collections import config_flags
import numpy as np

from lpta import command_line
from lpta import families
from lpta import objectives
from lpta import sharding
from lpta import train
from lpta.data import preprocessing
from lpta.errors import ConfigError, LptaError

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file (configs/*.py).')
_STEPS = flags.DEFINE_integer('steps', 20, 'Timed training steps.')
_WARMUP_STEPS = 2
flags.mark_flags_as_required(['config'])


def peak_memory_bytes() -> tuple[int, str]:
  """(bytes, what was measured)."""
  stats = jax.devices()[0].memory_stats() or {}
  if 'peak_bytes_in_use' in stats:
    return stats['peak_bytes_in_use'], 'device peak'
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, 'host peak RSS'


def benchmark(config, num_steps: int) -> dict:
  """Times `num_steps` train steps of `config` at its global batch size."""
  if objectives.needs_teacher(config.transfer):
    raise ConfigError('lpta.benchmark times a network without a teacher; run it on a config '
                      'without one (e.g. the teacher\'s, configs/fashion_mnist_wrn.py).')
  mesh = sharding.make_mesh()
  family, source = train.validate_config(config, mesh.size)
  image_shape, num_classes = source.image_shape, source.num_classes
  model = family.build(num_classes, families.compute_dtype(config.half_precision))
  state = train.create_train_state(
      jax.random.key(0), model,
      train.create_optimizer(config.optimizer, config.optimizer.learning_rate), image_shape, mesh,
      family)
  objective = family.objective(config, model, image_shape)
  trainer = train.Trainer(family, source, objective, num_train_steps=1, mesh=mesh)
  rng = np.random.default_rng(0)
  batch = trainer.to_global({
      'image': rng.integers(0, 256, (config.batch_size, *image_shape), dtype=np.uint8),
      'label': rng.integers(0, num_classes, config.batch_size).astype(np.int32)})
  channels = image_shape[-1:]
  normalisation = sharding.replicate(
      preprocessing.Normalisation(np.full(channels, .5, np.float32),
                                  np.full(channels, .25, np.float32)), mesh)
  metrics = sharding.replicate(train.train_metrics_class(objective.term_names).empty(), mesh)
  step_rng = sharding.replicate(jax.random.key(1), mesh)

  def step(state, metrics):
    state, metrics = trainer.train_step(state, metrics, batch, normalisation, step_rng, None)
    jax.block_until_ready((state, metrics))
    return state, metrics

  start = time.perf_counter()
  state, metrics = step(state, metrics)
  compile_seconds = time.perf_counter() - start
  for _ in range(_WARMUP_STEPS):
    state, metrics = step(state, metrics)
  step_seconds = []
  for _ in range(num_steps):
    start = time.perf_counter()
    state, metrics = step(state, metrics)
    step_seconds.append(time.perf_counter() - start)
  memory, memory_kind = peak_memory_bytes()
  median = float(np.median(step_seconds))
  return {
      'device': f'{jax.device_count()} × {jax.devices()[0].device_kind}',
      'model': dict(config.model),
      'image_shape': list(image_shape), 'batch_size': config.batch_size,
      'dtype': 'bfloat16' if config.half_precision else 'float32',
      'compile_and_first_step_s': round(compile_seconds, 2),
      'step_s_median': round(median, 4), 'step_s_min': round(min(step_seconds), 4),
      'step_s_max': round(max(step_seconds), 4),
      'images_per_s': round(config.batch_size / median, 1),
      'peak_memory_gib': round(memory / 2**30, 2), 'peak_memory_kind': memory_kind,
      # pylint: disable-next=protected-access
      'compilations_of_train_step': trainer.train_step._cache_size(),
  }


def main(argv):
  del argv
  command_line.quiet_library_info()
  try:
    print(json.dumps(benchmark(_CONFIG.value, _STEPS.value), indent=1))
  except LptaError as error:
    sys.exit(f'error: {error}')


if __name__ == '__main__':
  app.run(main)
