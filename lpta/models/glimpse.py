"""The glimpse sensor: multi-resolution square patches cut around a location, inside jit.

Locations are (x, y) in [-1, 1]²: x grows to the right (columns), y downwards (rows); (−1, −1) is
the top-left corner of the image, (0, 0) its centre and (1, 1) its bottom-right corner. For an
image of H × W pixels, pixel (row i, column j) covers [j, j + 1) × [i, i + 1), so the location
(x, y) is the point c = ((x + 1)·W/2, (y + 1)·H/2) in pixels.

Patch j (j = 0 … k−1) has side s_j = patch_size · scale_factor^j pixels. Its top-left pixel is
round(c − s_j/2), rounded half to even, so that mirroring the image and the location together
mirrors the patch exactly when W − s_j is even (round(−a) = −round(a)). Pixels outside the image
are zero in the units of the images given, which for a network are its normalised inputs: zero
is the training mean, not black. Each patch is then average-pooled by scale_factor^j to
patch_size × patch_size: the sensor computes exactly "zero-pad, crop, average pool". Locations
are clipped to [-1, 1]² first, so a patch's centre lies on the image or its border.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp


def patch_sides(patch_size: int, num_scales: int, scale_factor: int) -> tuple[int, ...]:
  """Sides in pixels of the k patches before pooling: patch_size · scale_factor^j."""
  return tuple(patch_size * scale_factor**scale for scale in range(num_scales))


def location_to_pixels(locations: jax.Array, height: int, width: int) -> jax.Array:
  """Locations [..., 2] (x, y) in [-1, 1]² -> points [..., 2] (x, y) in pixels."""
  return (locations + 1) / 2 * jnp.array([width, height], locations.dtype)


def pixels_to_location(points: jax.Array, height: int, width: int) -> jax.Array:
  """Points [..., 2] (x, y) in pixels -> locations [..., 2] in [-1, 1]² (inverse of the above)."""
  return points / jnp.array([width, height], points.dtype) * 2 - 1


def patch_corners(locations: jax.Array, height: int, width: int, side: int) -> jax.Array:
  """Top-left pixels [..., 2] (row, column), int32, of the side × side patches centred at the
  (clipped) locations [..., 2]; they may lie outside the image."""
  centres = location_to_pixels(jnp.clip(locations, -1, 1), height, width)
  corners = jnp.round(centres - side / 2).astype(jnp.int32)  # (x, y) -> columns, rows
  return corners[..., ::-1]


def windows(images: jax.Array, locations: jax.Array, sides: Sequence[int]) -> list[jax.Array]:
  """The side × side windows [B, side, side, C] centred at the locations, one per side, zero
  outside the image (images padded once, then sliced: `lax.dynamic_slice` never clamps)."""
  _, height, width, channels = images.shape
  # A clipped location puts the centre on the border: the largest window reaches side/2 + 1 (the
  # rounding) pixels beyond it.
  pad = max(sides) // 2 + 1
  padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  crops = []
  for side in sides:
    corners = patch_corners(locations, height, width, side) + pad

    def crop(image, corner, side=side):
      return jax.lax.dynamic_slice(image, (corner[0], corner[1], 0), (side, side, channels))

    crops.append(jax.vmap(crop)(padded, corners))
  return crops


def glimpse(images: jax.Array, locations: jax.Array, patch_size: int, num_scales: int,
            scale_factor: int = 2, fill: jax.Array | None = None) -> jax.Array:
  """RAM's sensor: the k = num_scales patches around each location, each brought to patch_size².

  Args:
    images: [B, H, W, C], any float dtype.
    locations: [B, 2] (x, y) in [-1, 1]² (clipped to it).
    patch_size: side of the smallest patch and of every returned patch.
    num_scales: k, the number of patches.
    scale_factor: integer ratio of the sides of consecutive patches.
    fill: [B], each image's value outside it; None: zero.

  Returns:
    [B, k, patch_size, patch_size, C]: patch j is the average of scale_factor^j ×
    scale_factor^j blocks of the s_j × s_j window (`fill` outside the image).
  """
  channels = images.shape[-1]
  shift = jnp.zeros((), images.dtype) if fill is None else fill.reshape(-1, 1, 1, 1)
  patches = []
  for window in windows(images - shift, locations,
                        patch_sides(patch_size, num_scales, scale_factor)):
    factor = window.shape[1] // patch_size
    patches.append(
        window.reshape(-1, patch_size, factor, patch_size, factor, channels).mean((2, 4)))
  return jnp.stack(patches, axis=1) + (shift if fill is None else shift[:, None])


def resized_glimpses(images: jax.Array, locations: jax.Array, sides: Sequence[int],
                     output_size: int) -> jax.Array:
  """Windows of any sides around each location, each resized (bilinear, antialiased when
  shrinking) to output_size² (the fine-grained glimpse model's multi-resolution glimpses).

  images [B, H, W, C], locations [B, 2] -> [B, len(sides), output_size, output_size, C].
  """
  batch, channels = images.shape[0], images.shape[-1]
  return jnp.stack([
      jax.image.resize(window, (batch, output_size, output_size, channels), 'linear',
                       antialias=True)
      for window in windows(images, locations, sides)], axis=1)
