"""lpta.allocator: main.py and lpta.benchmark restart themselves under tcmalloc, once."""

import ctypes.util
import os
import subprocess
import sys

from lpta import allocator
from lpta import xla_cpu

# Restarts under tcmalloc where that applies, then prints its arguments and whether tcmalloc is
# mapped into the process.
_PROGRAM = '''
import sys
from lpta import allocator
allocator.restart_with_tcmalloc()
print(sys.argv[1:], any('tcmalloc' in line for line in open('/proc/self/maps')))
'''


def test_preload_with_adds_the_library_once():
  assert allocator.preload_with('', 'libtcmalloc_minimal.so.4') == 'libtcmalloc_minimal.so.4'
  assert (allocator.preload_with('/opt/libfoo.so', 'libtcmalloc_minimal.so.4')
          == '/opt/libfoo.so:libtcmalloc_minimal.so.4')
  assert allocator.preload_with('libtcmalloc_minimal.so.4', 'libtcmalloc_minimal.so.4') is None
  assert allocator.preload_with('/usr/lib/libjemalloc.so.2', 'libtcmalloc_minimal.so.4') is None
  assert allocator.preload_with('', None) is None


def _run(environ) -> str:
  result = subprocess.run([sys.executable, '-c', _PROGRAM, 'a', '--b=1'], env=environ,
                          capture_output=True, text=True, check=True, timeout=120)
  return result.stdout.strip()


def test_restarts_under_tcmalloc_where_installed_with_the_same_arguments():
  environ = {key: value for key, value in os.environ.items()
             if key not in ('LD_PRELOAD', xla_cpu.KEEP_DEFAULTS_VARIABLE)}
  installed = ctypes.util.find_library(allocator.LIBRARY) is not None
  assert _run(environ) == f"['a', '--b=1'] {installed and xla_cpu.cpu_tuning_applies()}"


def test_not_with_the_cpu_defaults_kept():
  environ = {key: value for key, value in os.environ.items() if key != 'LD_PRELOAD'}
  environ[xla_cpu.KEEP_DEFAULTS_VARIABLE] = '1'
  assert _run(environ) == "['a', '--b=1'] False"
