"""Test session setup: four CPU devices, so the sharded code paths run on every test machine."""

import jax

NUM_TEST_DEVICES = 4
jax.config.update('jax_num_cpu_devices', NUM_TEST_DEVICES)
