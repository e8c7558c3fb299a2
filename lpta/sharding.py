"""The device mesh: one 'data' axis over all devices; state replicated, batches sharded."""

import jax
import numpy as np


def make_mesh(devices=None) -> jax.sharding.Mesh:
  """A 1-D ('data',) mesh over `devices` (all devices of all processes by default)."""
  devices = jax.devices() if devices is None else devices
  return jax.sharding.Mesh(np.asarray(devices), ('data',))


def replicated(mesh: jax.sharding.Mesh) -> jax.sharding.NamedSharding:
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())


def batch_sharded(mesh: jax.sharding.Mesh) -> jax.sharding.NamedSharding:
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data'))


def replicate(tree, mesh: jax.sharding.Mesh):
  """A pytree of host values, identical on every process, as arrays replicated over `mesh`.

  Unlike `jax.device_put`, this also works when the mesh spans several processes (each one
  supplies the copies on its own devices). PRNG keys keep their type.
  """
  sharding = replicated(mesh)

  def put(x):
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      return jax.random.wrap_key_data(put(jax.random.key_data(x)),
                                      impl=jax.random.key_impl(x))
    return jax.make_array_from_process_local_data(sharding, np.asarray(x))

  return jax.tree.map(put, tree)
