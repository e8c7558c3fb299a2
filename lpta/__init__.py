"""lpta: attention in convolutional networks, in JAX/Flax.

Learn To Pay Attention (VGG attention estimators), attention transfer and glimpse models on one
sharded train loop. See README.md. `lpta.load_run(workdir)` loads a trained run for inference
(lpta.runs); it imports neither TensorFlow nor TFDS. `import lpta` itself imports no JAX, so
main.py can start itself again under tcmalloc first (lpta.allocator).
"""

from lpta import xla_cpu

xla_cpu.configure()


def __getattr__(name):
  """lpta.load_run and lpta.Run, imported on first use."""
  if name in ('load_run', 'Run'):
    from lpta import runs  # pylint: disable=g-import-not-at-top
    return getattr(runs, name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
