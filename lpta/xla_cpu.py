"""The one XLA:CPU option lpta sets: lone convolutions compiled by XLA itself, not by YNN.

jaxlib 0.10 routes every convolution on the CPU through its experimental YNN (XNNPACK) fusion.
For the small-channel convolutions of lpta's CPU models that path is slow, above all for weight
gradients: with YNN turned off for lone convolutions the quickstart's train step runs about twice
as fast on a 2-core machine (python -m lpta.benchmark --config=configs/quickstart.py: 191 →
376 images/s). Where a GPU or TPU plugin of JAX is installed (jax-cuda*, jax-rocm*, libtpu), the
CPU does not train, so lpta leaves XLA_FLAGS alone there.

The gradients are the same function: in float64 the quickstart model's parameter gradients on a
Fashion-MNIST batch agree with the default path to 2e-14 (relative to each leaf's largest), and
tests/test_xla_cpu.py checks it. XLA aborts the process on a flag it does not know, so the
option is set only for the jaxlib versions it was tested with, never over a value the user put in
XLA_FLAGS, and not at all with LPTA_XLA_CPU_DEFAULTS=1 in the environment. It is read when JAX
starts its CPU backend, so `import lpta` sets it (before the first computation).
"""

import importlib.metadata
import os

import jaxlib

OPTION = 'xla_cpu_experimental_ynn_fusion_type'
VALUE = '-individual_convolution'
TESTED_JAXLIB_VERSIONS = ('0.10.',)
KEEP_DEFAULTS_VARIABLE = 'LPTA_XLA_CPU_DEFAULTS'
ACCELERATOR_PACKAGES = ('jax-cuda', 'jax-rocm', 'libtpu')  # name prefixes, PEP 503-normalised


def accelerator_packages(distribution_names) -> list[str]:
  """The names among `distribution_names` that are GPU or TPU plugins of JAX."""
  normalised = (name.lower().replace('_', '-').replace('.', '-') for name in distribution_names)
  return [name for name in normalised if name.startswith(ACCELERATOR_PACKAGES)]


def installed_distribution_names() -> list[str]:
  return [distribution.metadata['Name'] or '' for distribution in
          importlib.metadata.distributions()]


def flags_with_option(xla_flags: str, jaxlib_version: str) -> str:
  """XLA_FLAGS with the option appended, if this jaxlib knows it and the flags do not set it."""
  if OPTION in xla_flags or not jaxlib_version.startswith(TESTED_JAXLIB_VERSIONS):
    return xla_flags
  return f'{xla_flags} --{OPTION}={VALUE}'.strip()


def cpu_tuning_applies() -> bool:
  """Whether lpta tunes the CPU for training (this option, lpta.allocator): not with
  LPTA_XLA_CPU_DEFAULTS=1, not where a GPU or TPU plugin of JAX is installed."""
  return (os.environ.get(KEEP_DEFAULTS_VARIABLE) != '1'
          and not accelerator_packages(installed_distribution_names()))


def configure() -> None:
  """Sets the option in this process's XLA_FLAGS (and so in the processes it starts)."""
  if not cpu_tuning_applies():
    return
  os.environ['XLA_FLAGS'] = flags_with_option(os.environ.get('XLA_FLAGS', ''),
                                              jaxlib.__version__)
