"""Preprocessing inside the jitted steps: augmentation and normalisation (jax, no TensorFlow).

Images travel as uint8 [B, H, W, C]. Augmentation works on them; `to_unit_range` scales them to
float [0, 1] ("pixels"), and a network's `Normalisation`, fitted on its training split and saved
in its checkpoints, turns pixels into its inputs.
"""

import flax
import jax
import jax.numpy as jnp


def to_unit_range(images: jax.Array) -> jax.Array:
  """uint8 images [B, H, W, C] -> float32 pixels in [0, 1]."""
  return images.astype(jnp.float32) / 255


@flax.struct.dataclass
class Normalisation:
  """Input statistics of a network, fitted on its training split.

  mean, std: float32 [C], per channel, of the train images scaled to [0, 1].
  zca_matrix: float32 [H·W·C, H·W·C] whitening matrix applied to the standardised flattened
    image, or None.
  """
  mean: jax.Array
  std: jax.Array
  zca_matrix: jax.Array | None = None

  def __call__(self, pixels: jax.Array) -> jax.Array:
    """Standardises each channel of pixels [B, H, W, C] in [0, 1], then ZCA-whitens if set."""
    standardised = (pixels - self.mean) / self.std
    if self.zca_matrix is None:
      return standardised
    flat = standardised.reshape(standardised.shape[0], -1)
    whitened = jnp.matmul(flat, self.zca_matrix.T, precision=jax.lax.Precision.HIGHEST)
    return whitened.reshape(standardised.shape)


def augment(rng: jax.Array, images: jax.Array, crop_padding: int, flip: bool) -> jax.Array:
  """Random crop of the zero-padded image and random horizontal flip, drawn per example.

  `crop_padding` and `flip` must be static under jit.

  Args:
    rng: jax PRNG key.
    images: [B, H, W, C], any dtype.
    crop_padding: pixels of zero padding on each side before cropping back to H x W; 0 skips the
      crop.
    flip: whether to mirror each image left-right with probability 1/2.

  Returns:
    Augmented images, same shape and dtype as `images`.
  """
  crop_rng, flip_rng = jax.random.split(rng)
  if crop_padding:
    images = _random_crop(crop_rng, images, crop_padding)
  if flip:
    images = _random_flip(flip_rng, images)
  return images


def _random_crop(rng: jax.Array, images: jax.Array, padding: int) -> jax.Array:
  """An H x W window [B, H, W, C] at a random offset of each image zero-padded by `padding`."""
  _, height, width, channels = images.shape
  padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  offsets = jax.random.randint(rng, (images.shape[0], 2), 0, 2 * padding + 1)

  def crop(image, offset):
    return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (height, width, channels))

  return jax.vmap(crop)(padded, offsets)


def _random_flip(rng: jax.Array, images: jax.Array) -> jax.Array:
  """Each image [B, H, W, C] mirrored left-right with probability 1/2."""
  flipped = jax.random.bernoulli(rng, 0.5, (images.shape[0],))
  return jnp.where(flipped[:, None, None, None], images[:, :, ::-1], images)
