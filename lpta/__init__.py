"""lpta: attention in convolutional networks, in JAX/Flax.

Learn To Pay Attention (VGG attention estimators), attention transfer and glimpse models on one
sharded train loop. See README.md. `lpta.load_run(workdir)` loads a trained run for inference
(lpta.runs); it imports neither TensorFlow nor TFDS. `import lpta` itself imports no JAX, so
main.py can start itself again under tcmalloc first (lpta.allocator).
"""

import os

from lpta import xla_cpu

__version__ = '0.3.0'

xla_cpu.configure()
# On Intel CPUs TensorFlow announces its oneDNN kernels with two lines on stderr when it is
# imported, which would break the one-line error messages. lpta runs no TensorFlow math (TF reads
# data and writes TensorBoard events), so the kernels are turned off unless the user chose.
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')


def __getattr__(name):
  """lpta.load_run and lpta.Run, imported on first use."""
  if name in ('load_run', 'Run'):
    from lpta import runs  # pylint: disable=g-import-not-at-top
    return getattr(runs, name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
