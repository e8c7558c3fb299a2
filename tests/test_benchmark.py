"""lpta.benchmark --estimate: the train step's FLOP count from XLA and the speed it implies."""

import jax
import jax.numpy as jnp
import pytest

from configs import quickstart
from lpta import benchmark


def _config(batch_size):
  config = quickstart.get_config()
  config.batch_size = batch_size
  return config


def test_the_train_steps_flops_grow_by_about_three_forward_passes_per_image():
  flops = {size: benchmark.LptaStep(_config(size)).counts()[0] for size in (8, 16, 24)}
  # The update costs the same at every batch size: each 8 more images add the same count, but
  # for batch-wide reductions (a few operations per element of a statistic, < 1e-4 of it).
  per_image = (flops[16] - flops[8]) / 8
  assert (flops[24] - flops[16]) / 8 == pytest.approx(per_image, rel=1e-4)
  # Training ≈ forward + two backward products (input and weight gradients) = 3 forward passes,
  # a little less as the first layer needs no input gradient; the augmentation adds little.
  step = benchmark.LptaStep(_config(8))
  forward = jax.jit(lambda images: step.state.apply_fn(
      {'params': step.state.params, 'batch_stats': step.state.batch_stats}, images,
      train=False)).lower(jnp.zeros((8, 28, 28, 1))).cost_analysis()['flops'] / 8
  assert 2.5 * forward < per_image < 3.5 * forward


def test_the_estimate_adds_the_flops_at_a_share_of_peak_to_a_cost_per_product():
  config = _config(16)
  step = benchmark.LptaStep(config)
  flops, products = step.counts()
  # Each product of the forward pass, again for its weights' gradient and, but for the first
  # convolution (the image needs no gradient), for its input's.
  forward = jax.jit(lambda images: step.state.apply_fn(
      {'params': step.state.params, 'batch_stats': step.state.batch_stats}, images,
      train=False)).lower(jnp.zeros((16, 28, 28, 1))).as_text()
  assert products == 3 * (forward.count('stablehlo.convolution')
                          + forward.count('stablehlo.dot_general')) - 1
  result = benchmark.estimate(config, 'h100', epoch_examples=60_000)
  assert result['train_gflop_per_image'] == pytest.approx(flops / 16 / 1e9, abs=5e-5)
  assert result['products_per_step'] == products
  peak = 494.7e12  # float32 on an H100's tensor cores (TF32), dense
  assert result['peak_tflop_per_s'] == pytest.approx(494.7)
  fast = flops / (0.3 * peak) + products * 20e-6
  slow = flops / (0.1 * peak) + products * 50e-6
  assert result['estimated_images_per_s'] == [round(16 / fast), round(16 / slow)]
  assert result['estimated_epoch_s'] == pytest.approx([60_000 / 16 * fast, 60_000 / 16 * slow],
                                                      rel=5e-3)  # 3 significant digits
  config.half_precision = True
  assert benchmark.estimate(config, 'h100', None)['peak_tflop_per_s'] == pytest.approx(989.4)
