"""Batches of numpy arrays for every process, resumable at any step.

Training: every process draws the same global batches from the whole split and feeds its own
slice of each, so a run does not depend on how many processes share it. Evaluation: each
process takes its own shard (sizes differ by at most one example), padded and masked, so every
process runs the same number of evaluation steps and every example counts once.
"""

from collections.abc import Iterator

import jax
import numpy as np

from lpta import errors


def process_shard(num_examples: int, process_index: int | None = None,
                  process_count: int | None = None) -> slice:
  """The contiguous slice of `num_examples` that a process evaluates: the sizes differ by at
  most one and every example is in exactly one shard."""
  index = jax.process_index() if process_index is None else process_index
  count = jax.process_count() if process_count is None else process_count
  return slice(num_examples * index // count, num_examples * (index + 1) // count)


def num_eval_batches(num_examples: int, local_batch_size: int,
                     process_count: int | None = None) -> int:
  """Evaluation steps every process runs: enough for the largest shard of `num_examples`
  (all processes together), ⌈⌈N / P⌉ / b⌉."""
  count = jax.process_count() if process_count is None else process_count
  largest_shard = -(-num_examples // count)
  return max(1, -(-largest_shard // local_batch_size))


def local_steps_per_epoch(num_local_examples: int, local_batch_size: int, start_step: int) -> int:
  """Full batches of `local_batch_size` in `num_local_examples`; checks them and `start_step`.

  Raises:
    ConfigError: there are fewer examples than one batch.
    ValueError: `start_step` is negative.
  """
  if num_local_examples < local_batch_size:
    raise errors.ConfigError(
        f'The batch size {local_batch_size} is larger than the {num_local_examples} train '
        'examples of this process; lower the batch size.')
  if start_step < 0:
    raise ValueError(f'start_step={start_step} must be non-negative.')
  return num_local_examples // local_batch_size


def train_batches(arrays: dict[str, np.ndarray], local_batch_size: int, seed: int,
                  start_step: int = 0, process_index: int | None = None,
                  process_count: int | None = None) -> Iterator[dict[str, np.ndarray]]:
  """Infinite shuffled batches of the whole train split, starting at global step `start_step`.

  Every process holds all of `arrays` and draws the same global batches of
  local_batch_size × process_count examples; it yields its own slice of each (process p: rows
  [p·b, (p + 1)·b)), so the global batches, and the run, do not depend on the number of
  processes. Epoch e visits the examples in the order of a permutation drawn from `[seed, e]`
  and drops the last N mod (global batch) of them, so step s is batch s % steps_per_epoch of
  epoch s // steps_per_epoch: resuming at `start_step` yields exactly the batches an
  uninterrupted iterator yields from there on.

  Args:
    arrays: {name: [N, ...]}, e.g. 'image' [N, H, W, C] and 'label' [N], the whole split.
    local_batch_size: examples per batch on this process (b).
    seed: non-negative shuffling seed.
    start_step: global step of the first batch.
    process_index, process_count: this process and how many there are (default: jax's).

  Returns:
    An iterator of dicts with the same keys, each [b, ...].

  Raises:
    ConfigError: the split holds fewer examples than one global batch.
  """
  index = jax.process_index() if process_index is None else process_index
  count = jax.process_count() if process_count is None else process_count
  num_examples = len(arrays['label'])
  steps_per_epoch = local_steps_per_epoch(num_examples, local_batch_size * count, start_step)
  return _shuffled_batches(arrays, num_examples, local_batch_size, index * local_batch_size,
                           count * local_batch_size, seed, steps_per_epoch, start_step)


def _shuffled_batches(arrays, num_examples, local_batch_size, offset, global_batch_size, seed,
                      steps_per_epoch, start_step):
  epoch, first_step = divmod(start_step, steps_per_epoch)
  while True:
    order = np.random.default_rng([seed, epoch]).permutation(num_examples)
    for step in range(first_step, steps_per_epoch):
      start = step * global_batch_size + offset
      indices = order[start:start + local_batch_size]
      yield {name: array[indices] for name, array in arrays.items()}
    epoch, first_step = epoch + 1, 0


def eval_batches(arrays: dict[str, np.ndarray], local_batch_size: int,
                 num_batches: int) -> Iterator[dict[str, np.ndarray]]:
  """Exactly `num_batches` batches of this shard in order, zero-padded to full size.

  Every example appears once with mask 1; padding (the end of the last partial batch, and whole
  batches beyond the shard) has mask 0.

  Args:
    arrays: {name: [N, ...]} with at least 'label'.
    local_batch_size: examples per batch on this process (b).
    num_batches: batches to yield, e.g. from `num_eval_batches`.

  Yields:
    Dicts with the keys of `arrays`, each [b, ...], and `mask` float32 [b].
  """
  for start in range(0, num_batches * local_batch_size, local_batch_size):
    end = start + local_batch_size
    yield padded_batch({name: array[start:end] for name, array in arrays.items()},
                       local_batch_size)


def padded_batch(batch: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
  """`batch` of n <= size examples zero-padded to `size`, with `mask` float32 [size] (1: real)."""
  padded = {}
  for name, array in batch.items():
    padded[name] = np.zeros((size, *array.shape[1:]), array.dtype)
    padded[name][:len(array)] = array
  padded['mask'] = (np.arange(size) < len(batch['label'])).astype(np.float32)
  return padded


def sum_over_processes(tree):
  """Sums a pytree of numbers over processes; every process gets the identical result."""
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return jax.tree.map(lambda x: np.asarray(x).sum(0), multihost_utils.process_allgather(tree))
