"""tcmalloc under lpta's training programs: XLA:CPU's step temporaries without page faults.

XLA:CPU allocates all temporaries of one run of a jitted step as one block
(`jax.jit(f).lower(...).compile().memory_analysis().temp_size_in_bytes`: 174 MB for the
quickstart's train step) and frees it when the step ends. glibc's malloc hands out a block that
large as a fresh mmap and unmaps it on free, so every step touches 174 MB of new pages: 42,000
minor page faults and about 0.15 s of kernel time per quickstart step on 2 CPU cores, a third of
the step. tcmalloc keeps freed memory for the next step (0 faults): the quickstart's step runs
about 1.35× as fast, a WRN-16-2's 1.1×.

main.py and lpta.benchmark therefore start themselves again, once and before JAX is imported,
with tcmalloc preloaded (LD_PRELOAD) when the system has it (Debian/Ubuntu: libtcmalloc-minimal4,
which setup.sh installs). They do not where LD_PRELOAD already names an allocator, with
LPTA_XLA_CPU_DEFAULTS=1 in the environment (lpta's CPU tuning off, as in lpta.xla_cpu), or where
a GPU or TPU plugin of JAX is installed (the CPU does not train there). Importing lpta never
restarts anything.
"""

import ctypes.util
import os
import sys

from lpta import xla_cpu

LIBRARY = 'tcmalloc_minimal'  # what ctypes.util.find_library looks for
PRELOADED_ALLOCATORS = ('tcmalloc', 'jemalloc', 'mimalloc')


def preload_with(ld_preload: str, library: str | None) -> str | None:
  """LD_PRELOAD with `library` added, or None where nothing should change: no library found, or
  an allocator already preloaded."""
  if not library or any(name in ld_preload for name in PRELOADED_ALLOCATORS):
    return None
  return f'{ld_preload}:{library}' if ld_preload else library


def restart_with_tcmalloc() -> None:
  """Replaces this process by the same command with tcmalloc preloaded, where that applies
  (the module docstring); otherwise returns and changes nothing. Call it first in a program."""
  if not xla_cpu.cpu_tuning_applies():
    return
  ld_preload = preload_with(os.environ.get('LD_PRELOAD', ''), ctypes.util.find_library(LIBRARY))
  if ld_preload is None:
    return
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, sys.orig_argv, {**os.environ, 'LD_PRELOAD': ld_preload})
