"""Where a trained model looks, for any model: its learned maps, CAM-style maps and pixel
attributions, all as maps of the same form.

  compute = lpta.maps.map_function(run, 'gradcam')
  maps = compute(run.arrays, pixels, labels, rng)          # pixels [B, H, W, C] in [0, 1]

Kinds (`KINDS`), so that learned and post-hoc maps are scored the same way:
  'attention': the family's own maps (`family.figure_arrays`: LTPA's learned attention L1..Ln,
    attention transfer's activation maps of its groups), one level or the mean over levels.
  'activation': the activation-based map of Zagoruyko & Komodakis, F(A) = (1/C) Σ_c A_c², of the
    feature layer A [B, h, w, C].
  'gradcam': Grad-CAM (Selvaraju et al. 2017), ReLU(Σ_k α_k A_k) with α_k = (1/hw) Σ_ij
    ∂y_c/∂A_kij, y_c the logit of class c (the predicted class, or the label). For a head that is
    global average pooling then one linear layer this is CAM (Zhou et al. 2016) up to a positive
    factor, so CAM is not a kind of its own.
  'gradcam_plus_plus': Grad-CAM++ (Chattopadhay et al. 2018, Eq. 19 and 10), ReLU(Σ_k w_k A_k)
    with w_k = Σ_ij α_kij ReLU(g_kij), α_kij = g_kij² / (2 g_kij² + Σ_ab A_kab g_kij³) (0 where
    g_kij = 0), g = ∂y_c/∂A.
  'score_cam': Score-CAM (Wang et al. 2020, Alg. 1 and Eq. 8), ReLU(Σ_k s_k A_k), s_k the softmax
    probability of class c for the image multiplied by H_k, channel k of A upsampled to the
    image and min-max scaled to [0, 1] (masked pixels go black; pytorch-grad-cam in addition
    takes a softmax of s over channels, which the paper does not). The C masked forward passes
    run `settings.chunk` at a time.
  'gradient', 'gradient_x_input', 'integrated_gradients', 'smoothgrad', 'occlusion': the pixel
    attributions a [B, H, W, C] of lpta.attributions as maps Σ_c |a_c|; their settings
    (integration steps and baseline, noise and samples, window and stride) in `settings`.
Every kind but 'attention' and 'activation' explains the logit y_c of one class per image:
`target` 'predicted' (the class the network predicts for the image) or 'label' (the class given
in `labels`: the true class, or any class per image).
The feature layer is `family.feature_layer` (a module path such as 'backbone/conv13') or, when
the family names none, the last module whose output is [B, h, w, C] with h, w > 1.

Every map comes back as float32 [B, H, W] at the image size (bilinear, half-pixel centres),
non-negative and divided by its own maximum, so that each map's largest value is 1 (a map that
is zero everywhere stays zero). Maps are computed in inference mode under `jax.jit`.
"""

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from lpta import attributions
from lpta import runs
from lpta.errors import LptaError

CAM_KINDS = ('gradcam', 'gradcam_plus_plus', 'score_cam')
KINDS = ('attention', 'activation', *CAM_KINDS, *attributions.METHODS)
TARGETS = ('predicted', 'label')

# (arrays, pixels [B, H, W, C] in [0, 1], labels [B], rng) -> maps [B, H, W].
MapFunction = Callable[..., jax.Array]


def scale_to_unit_maximum(maps: jax.Array) -> jax.Array:
  """Non-negative maps [B, H, W] divided per map by its maximum (all-zero maps stay zero)."""
  maps = jnp.maximum(maps.astype(jnp.float32), 0.)
  return maps / jnp.maximum(maps.max(axis=(1, 2), keepdims=True), 1e-12)


def to_image_size(maps: jax.Array, height: int, width: int) -> jax.Array:
  """[B, h, w] -> [B, height, width], bilinear with half-pixel centres."""
  return jax.image.resize(maps.astype(jnp.float32), (maps.shape[0], height, width), 'bilinear')


def _call_path(context) -> str:
  return '/'.join(context.module.path)


def feature_layer(run: runs.Run) -> str:
  """The module path whose output the activation and Grad-CAM maps read (module docstring)."""
  if run.family.feature_layer is not None:
    return run.family.feature_layer
  found = []

  def record(next_fun, args, kwargs, context):
    output = next_fun(*args, **kwargs)
    shape = getattr(output, 'shape', ())
    if context.method_name == '__call__' and len(shape) == 4 and min(shape[1:3]) > 1:
      found.append(_call_path(context))
    return output

  images = jax.ShapeDtypeStruct((1, *run.image_shape), jnp.float32)
  with nn.intercept_methods(record):
    jax.eval_shape(lambda v, x: run.model.apply(v, x, train=False, rngs=run.family.rngs(
        jax.random.key(0))), run.variables, images)
  if not found:
    raise LptaError(f'{run.config.model.name} has no spatial feature map ([B, h, w, C] with '
                    'h, w > 1), so it has no activation or Grad-CAM maps.')
  return found[-1]


def _apply_with_offset(run: runs.Run, layer: str, arrays, pixels, offset, rng):
  """run.apply with `offset` added to the output of module `layer` (zeros give the plain
  forward pass; the gradient with respect to it is the gradient at that layer). Returns
  (logits, aux, that layer's output)."""
  captured = []

  def add_offset(next_fun, args, kwargs, context):
    output = next_fun(*args, **kwargs)
    if context.method_name == '__call__' and _call_path(context) == layer and not captured:
      output = output + offset.astype(output.dtype)
      captured.append(output)
    return output

  with nn.intercept_methods(add_offset):
    logits, aux = run.apply(arrays, pixels, rng)
  if not captured:
    raise LptaError(f'{run.config.model.name} has no module {layer!r}.')
  return logits, aux, captured[0]


def _feature_shape(run: runs.Run, layer: str, batch_size: int) -> tuple[int, ...]:
  pixels = jax.ShapeDtypeStruct((batch_size, *run.image_shape), jnp.float32)
  zero = jnp.zeros((), jnp.float32)
  features = jax.eval_shape(
      lambda arrays, x: _apply_with_offset(run, layer, arrays, x, zero, None)[2],
      run.arrays, pixels)
  return features.shape


def gradcam_weights(gradients: jax.Array, features: jax.Array) -> jax.Array:
  """Grad-CAM's α_k = (1/hw) Σ_ij g_kij: [B, h, w, C] (both) -> [B, 1, 1, C]."""
  del features
  return jnp.mean(gradients, axis=(1, 2), keepdims=True)


def gradcam_plus_plus_weights(gradients: jax.Array, features: jax.Array) -> jax.Array:
  """Grad-CAM++'s w_k (module docstring): [B, h, w, C] (both) -> [B, 1, 1, C]."""
  squared = jnp.square(gradients)
  denominator = 2 * squared + jnp.sum(features, axis=(1, 2), keepdims=True) * squared * gradients
  alpha = jnp.where(denominator != 0, squared / jnp.where(denominator != 0, denominator, 1.), 0.)
  return jnp.sum(alpha * jax.nn.relu(gradients), axis=(1, 2), keepdims=True)


def min_max_scaled(maps: jax.Array) -> jax.Array:
  """[B, H, W, C] each channel of each image scaled to [0, 1] (a constant channel gives 0)."""
  low = maps.min(axis=(1, 2), keepdims=True)
  spread = maps.max(axis=(1, 2), keepdims=True) - low
  return jnp.where(spread > 0, (maps - low) / jnp.where(spread > 0, spread, 1.), 0.)


def target_classes(logits: jax.Array, labels: jax.Array, target: str) -> jax.Array:
  """The class explained per image [B]: the prediction or the given label."""
  return jnp.argmax(logits, -1) if target == 'predicted' else labels.astype(jnp.int32)


def map_function(run: runs.Run, kind: str, *, level: int | None = None,
                 target: str = 'predicted',
                 settings: attributions.Settings = attributions.Settings()) -> MapFunction:
  """A jitted function (arrays, pixels, labels, rng) -> maps [B, H, W] of `kind` (KINDS).

  Args:
    run: a loaded run (lpta.load_run).
    kind: one of KINDS (module docstring).
    level: for 'attention', the level (1 for L1, ...) or None for the mean over levels.
    target: the class whose logit is explained: 'predicted' or 'label'.
    settings: of Score-CAM's chunks and the pixel attributions (lpta.attributions.Settings).
  Raises:
    LptaError: the run has no maps of that kind (e.g. no learned attention).
  """
  if kind not in KINDS:
    raise LptaError(f'maps {kind!r} are not a kind of map; use one of {", ".join(KINDS)}.')
  if target not in TARGETS:
    raise LptaError(f'target {target!r} is not valid; use one of {", ".join(TARGETS)}.')
  height, width = run.image_shape[:2]
  if kind == 'attention':
    return jax.jit(_attention_function(run, level, height, width))
  if kind in attributions.METHODS:
    return jax.jit(_attribution_map_function(run, kind, target, settings))
  layer = feature_layer(run)

  def activation(arrays, pixels, labels, rng):
    del labels
    _, _, features = _apply_with_offset(run, layer, arrays, pixels, jnp.zeros(()), rng)
    maps = jnp.mean(jnp.square(features.astype(jnp.float32)), axis=-1)
    return scale_to_unit_maximum(to_image_size(maps, height, width))

  def weighted_features(weights_of):
    def cam(arrays, pixels, labels, rng):
      shape = _feature_shape(run, layer, pixels.shape[0])

      def explained_logits(offset):
        logits, _, features = _apply_with_offset(run, layer, arrays, pixels, offset, rng)
        chosen = jnp.take_along_axis(logits, target_classes(logits, labels, target)[:, None],
                                     axis=-1)
        return chosen.sum(), features  # examples are independent in inference mode

      gradients, features = jax.grad(explained_logits, has_aux=True)(
          jnp.zeros(shape, jnp.float32))
      features = features.astype(jnp.float32)
      maps = jax.nn.relu(jnp.sum(weights_of(gradients, features) * features, axis=-1))
      return scale_to_unit_maximum(to_image_size(maps, height, width))
    return cam

  def score_cam(arrays, pixels, labels, rng):
    logits, _, features = _apply_with_offset(run, layer, arrays, pixels, jnp.zeros(()), rng)
    classes = target_classes(logits, labels, target)
    features = features.astype(jnp.float32)
    masks = min_max_scaled(jax.image.resize(
        features, (*features.shape[:1], height, width, features.shape[-1]), 'bilinear'))

    def score(mask):  # [B, H, W] -> p(c | image · mask) [B]
      masked_logits, _ = run.apply(arrays, pixels * mask[..., None], rng)
      return jnp.take_along_axis(jax.nn.softmax(masked_logits.astype(jnp.float32)),
                                 classes[:, None], axis=-1)[:, 0]

    scores = jax.lax.map(score, jnp.moveaxis(masks, -1, 0), batch_size=settings.chunk)  # [C, B]
    maps = jax.nn.relu(jnp.einsum('kb,bhwk->bhw', scores, features))
    return scale_to_unit_maximum(to_image_size(maps, height, width))

  functions = {'activation': activation, 'gradcam': weighted_features(gradcam_weights),
               'gradcam_plus_plus': weighted_features(gradcam_plus_plus_weights),
               'score_cam': score_cam}
  return jax.jit(functions[kind])


def _attribution_map_function(run: runs.Run, method: str, target: str,
                              settings: attributions.Settings):
  attribute = attributions.attribution_function(run, method, settings)

  def attribution_map(arrays, pixels, labels, rng):
    logits, _ = run.apply(arrays, pixels, rng)
    values = attribute(arrays, pixels, target_classes(logits, labels, target), rng)
    return scale_to_unit_maximum(jnp.sum(jnp.abs(values.astype(jnp.float32)), axis=-1))

  return attribution_map


def _attention_function(run: runs.Run, level: int | None, height: int, width: int):
  if not run.family.figure_arrays_are_maps:
    raise LptaError(f'{run.config.model.name} draws no attention maps of its own (its figure '
                    'shows glimpses); use the activation or gradcam maps.')
  num_levels = len(jax.eval_shape(
      lambda arrays, x: run.family.figure_arrays(run.apply(arrays, x)[1]), run.arrays,
      jax.ShapeDtypeStruct((1, *run.image_shape), jnp.float32)))
  if num_levels == 0:
    raise LptaError(f'{run.config.model.name} has no attention maps of its own; use the '
                    'activation or gradcam maps.')
  if level is not None and not 1 <= level <= num_levels:
    raise LptaError(f'level {level} does not exist; {run.config.model.name} has levels 1 to '
                    f'{num_levels}.')

  def attention(arrays, pixels, labels, rng):
    del labels
    _, aux = run.apply(arrays, pixels, rng)
    levels = [to_image_size(m, height, width) for m in run.family.figure_arrays(aux)]
    maps = levels[level - 1] if level is not None else jnp.mean(jnp.stack(levels), axis=0)
    return scale_to_unit_maximum(maps)

  return attention
