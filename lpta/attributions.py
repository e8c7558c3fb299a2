"""Pixel attributions of any model: how much each input pixel moves the explained logit.

  attribute = lpta.attributions.attribution_function(run, 'integrated_gradients')
  values = attribute(run.arrays, pixels, classes, rng)   # [B, H, W, C], signed

Methods (`METHODS`), each on pixels x in [0, 1] (the network's own normalisation is inside the
model), for the logit f_c of one class c per image:
  'gradient': ∂f_c/∂x (Simonyan, Vedaldi & Zisserman 2014, Eq. 1 before the absolute value).
  'gradient_x_input': x ⊙ ∂f_c/∂x (Shrikumar et al. 2016).
  'integrated_gradients': (x − x̄) ⊙ ∫₀¹ ∂f_c/∂x (x̄ + α (x − x̄)) dα (Sundararajan, Taly & Yan
    2017, Eq. 1) with the black image x̄ = 0 as baseline (or a constant grey), the integral by
    Gauss–Legendre quadrature with `steps` nodes, as Captum's default; completeness (their
    Axiom, Prop. 1): Σ attributions = f_c(x) − f_c(x̄), exact when the integrand is a polynomial
    in α of degree < 2 · steps.
  'smoothgrad': (1/n) Σ_i ∂f_c/∂x (x + ε_i), ε_i ~ N(0, σ²) in pixel units, n = `samples`
    (Smilkov et al. 2017, Eq. 3; σ = noise level × the input range 1).
  'occlusion': f_c(x) − f_c(x with a window set to 0), each pixel the mean over the windows that
    cover it (Zeiler & Fergus 2014, §4.2; Captum's Occlusion), windows of side `window` every
    `stride` pixels over all channels.
The sampled inputs (integration nodes, noise draws, occluded windows) are evaluated `chunk` at a
time, so memory is `chunk` forward and backward passes of the batch, whatever `steps`,
`samples` or the number of windows. Everything runs in inference mode, under `jax.jit` by the
caller (lpta.maps).
"""

from collections.abc import Callable
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from lpta import runs

METHODS = ('gradient', 'gradient_x_input', 'integrated_gradients', 'smoothgrad', 'occlusion')

# (arrays, pixels [B, H, W, C], classes [B] int, rng) -> attributions [B, H, W, C].
AttributionFunction = Callable[..., jax.Array]


@dataclasses.dataclass(frozen=True)
class Settings:
  """The settings of the sampled methods (module docstring); defaults as Captum's where it has
  one (50 integration steps), else the papers' (SmoothGrad: 15% noise, 50 samples)."""
  steps: int = 50
  baseline: float = 0.  # the baseline image's value in pixel units (0: black)
  noise: float = 0.15
  samples: int = 50
  window: int = 4
  stride: int = 2
  chunk: int = 8


def _explained_logits(run: runs.Run, arrays, classes, rng):
  """pixels [B, H, W, C] -> f_{c_b}(x_b) per image [B]."""

  def explained(pixels):
    logits, _ = run.apply(arrays, pixels, rng)
    return jnp.take_along_axis(logits, classes[:, None], axis=-1)[:, 0]

  return explained


def _logit_function(run: runs.Run, arrays, classes, rng):
  """pixels [B, H, W, C] -> Σ_b f_{c_b}(x_b) (examples are independent in inference mode, so
  its gradient is each example's own)."""
  explained = _explained_logits(run, arrays, classes, rng)
  return lambda pixels: explained(pixels).sum()


def gradient(run: runs.Run, arrays, pixels, classes, rng) -> jax.Array:
  return jax.grad(_logit_function(run, arrays, classes, rng))(pixels)


def gauss_legendre(steps: int) -> tuple[np.ndarray, np.ndarray]:
  """(nodes α_k in (0, 1), weights w_k summing to 1) of `steps`-point Gauss–Legendre on [0, 1]."""
  nodes, weights = np.polynomial.legendre.leggauss(steps)
  return (0.5 * (nodes + 1)).astype(np.float32), (0.5 * weights).astype(np.float32)


def _mean_gradient(run, arrays, classes, rng, inputs_for, values, weights, chunk: int):
  """Σ_k weights_k · ∂f/∂x at inputs_for(values_k), `chunk` values at a time: [B, H, W, C]."""
  grad = jax.grad(_logit_function(run, arrays, classes, rng))
  weighted = jax.lax.map(lambda item: item[1] * grad(inputs_for(item[0])), (values, weights),
                         batch_size=chunk)
  return weighted.sum(axis=0)


def integrated_gradients(run: runs.Run, arrays, pixels, classes, rng,
                         settings: Settings) -> jax.Array:
  nodes, weights = gauss_legendre(settings.steps)
  baseline = jnp.full_like(pixels, settings.baseline)
  path_gradient = _mean_gradient(run, arrays, classes, rng,
                                 lambda alpha: baseline + alpha * (pixels - baseline),
                                 jnp.asarray(nodes), jnp.asarray(weights), settings.chunk)
  return (pixels - baseline) * path_gradient


def completeness_error(run: runs.Run, arrays, pixels, classes, rng, attributions,
                       settings: Settings) -> jax.Array:
  """|Σ attributions − (f_c(x) − f_c(x̄))| per image [B]: how far the quadrature is from exact."""
  logits = _explained_logits(run, arrays, classes, rng)
  difference = logits(pixels) - logits(jnp.full_like(pixels, settings.baseline))
  return jnp.abs(attributions.sum(axis=(1, 2, 3)) - difference)


def smoothgrad(run: runs.Run, arrays, pixels, classes, rng, settings: Settings) -> jax.Array:
  keys = jax.random.split(rng, settings.samples)  # one noise draw per key, made in its chunk
  weights = jnp.full((settings.samples,), 1. / settings.samples)
  return _mean_gradient(
      run, arrays, classes, rng,
      lambda key: pixels + settings.noise * jax.random.normal(key, pixels.shape), keys, weights,
      settings.chunk)


def occlusion_windows(height: int, width: int, window: int, stride: int) -> np.ndarray:
  """Masks [N, H, W] (1 inside) of the windows of side `window` at every `stride` pixels that
  fit in the image, row by row."""
  rows = range(0, max(height - window, 0) + 1, stride)
  columns = range(0, max(width - window, 0) + 1, stride)
  masks = np.zeros((len(rows) * len(columns), height, width), np.float32)
  for index, (row, column) in enumerate((r, c) for r in rows for c in columns):
    masks[index, row:row + window, column:column + window] = 1
  return masks


def occlusion(run: runs.Run, arrays, pixels, classes, rng, settings: Settings) -> jax.Array:
  masks = occlusion_windows(*pixels.shape[1:3], settings.window, settings.stride)
  logits = _explained_logits(run, arrays, classes, rng)

  def occluded(mask):  # mask [H, W] -> f_c with the window set to the baseline [B]
    mask = mask[None, :, :, None]
    return logits(pixels * (1 - mask) + settings.baseline * mask)

  drops = logits(pixels)[None] - jax.lax.map(occluded, jnp.asarray(masks),
                                             batch_size=settings.chunk)  # [N, B]
  covered = masks.sum(axis=0)  # windows over each pixel [H, W]
  summed = jnp.einsum('nb,nhw->bhw', drops, jnp.asarray(masks))
  means = jnp.where(covered > 0, summed / np.maximum(covered, 1), 0.)
  return jnp.broadcast_to(means[..., None], pixels.shape)


def attribution_function(run: runs.Run, method: str,
                         settings: Settings = Settings()) -> AttributionFunction:
  """(arrays, pixels [B, H, W, C] in [0, 1], classes [B], rng) -> signed attributions
  [B, H, W, C] of `method` (METHODS), not jitted."""
  if method == 'gradient':
    return lambda arrays, pixels, classes, rng: gradient(run, arrays, pixels, classes, rng)
  if method == 'gradient_x_input':
    return lambda arrays, pixels, classes, rng: pixels * gradient(run, arrays, pixels, classes,
                                                                  rng)
  sampled = {'integrated_gradients': integrated_gradients, 'smoothgrad': smoothgrad,
             'occlusion': occlusion}[method]
  return lambda arrays, pixels, classes, rng: sampled(run, arrays, pixels, classes, rng, settings)
