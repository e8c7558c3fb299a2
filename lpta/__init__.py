"""lpta: attention in convolutional networks, in JAX/Flax.

Learn To Pay Attention (VGG attention estimators), attention transfer and glimpse models on one
sharded train loop. See README.md. `lpta.load_run(workdir)` loads a trained run for inference
(lpta.runs); it imports neither TensorFlow nor TFDS.
"""

from lpta import xla_cpu

xla_cpu.configure()

from lpta.runs import load_run, Run  # pylint: disable=g-import-not-at-top,wrong-import-position
