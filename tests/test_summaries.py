"""Attention figures: colour map, normalisation, upsampling and the grid layout."""

import subprocess
import sys

import numpy as np

from lpta import summaries
from lpta.families import ltpa


def test_jet_is_matplotlibs_with_its_anchor_colours_and_clips():
  from matplotlib import colormaps  # pylint: disable=g-import-not-at-top
  values = np.linspace(0., 1., 101).reshape(1, 101)
  np.testing.assert_array_equal(summaries.jet(values), colormaps['jet'](values)[..., :3])
  # Dark blue at 0, dark red at 1; outside [0, 1] the ends.
  np.testing.assert_allclose(summaries.jet(np.array([-1., 0., 1., 2.])),
                             [[0., 0., .5], [0., 0., .5], [.5, 0., 0.], [.5, 0., 0.]], atol=1e-7)
  # The middle is light green, (.5, 1, .5) within matplotlib's 256-level table.
  np.testing.assert_allclose(summaries.jet(np.array([.5])), [[.5, 1., .5]], atol=.025)


def test_importing_summaries_does_not_import_matplotlib():
  script = 'import sys\nfrom lpta import summaries\nprint("matplotlib" in sys.modules)'
  result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          timeout=120, check=True)
  assert result.stdout.strip() == 'False'


def test_softmax_maps_are_min_max_scaled_and_sigmoid_maps_kept():
  maps = np.array([[[.1, .3], [.2, .4]]])
  np.testing.assert_allclose(ltpa.maps_to_unit_range(maps, 'softmax'),
                             [[[0., 2 / 3], [1 / 3, 1.]]], atol=1e-7)
  np.testing.assert_array_equal(ltpa.maps_to_unit_range(maps, 'sigmoid'), maps)


def test_upsampling_a_constant_map_keeps_it_constant_and_a_ramp_monotone():
  constant = summaries.upsample(np.full((1, 4, 4), .25), 16, 16)
  np.testing.assert_allclose(constant, .25, atol=1e-7)
  ramp = summaries.upsample(np.array([[[0., 1.]]]), 1, 8)[0, 0]
  assert np.all(np.diff(ramp) >= 0) and ramp[0] == 0. and ramp[-1] == 1.


def test_grid_layout_rows_are_images_and_last_column_is_the_original():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (2, 32, 32, 1), dtype=np.uint8)
  maps = [summaries.min_max_scale(rng.random((2, s, s))) for s in (32, 16, 8)]
  grid = summaries.overlay_grid(images, maps)
  tile = 32 * 3  # 32 px enlarged ×3 to reach 96
  assert grid.shape == (2 * tile, 4 * tile, 3)
  assert grid.min() >= 0. and grid.max() <= 1.
  original = grid[tile:2 * tile, 3 * tile:4 * tile]  # second image, original column
  expected = np.repeat(np.repeat(images[1, ..., 0] / 255., 3, axis=0), 3, axis=1)
  for channel in range(3):
    np.testing.assert_allclose(original[..., channel], expected, atol=1e-6)
  # Level 1 is already 32×32, so its overlay shows the map itself: after min-max scaling the
  # hottest pixel is jet(1) = (.5, 0, .0) and the coldest jet(0) = (0, 0, .5); the grey image adds
  # the same amount to red and blue, so red − blue is ±0.4·0.5 there.
  level1 = grid[:tile:3, :tile:3]
  red_minus_blue = level1[..., 0] - level1[..., 2]
  hottest = np.unravel_index(np.argmax(maps[0][0]), (32, 32))
  coldest = np.unravel_index(np.argmin(maps[0][0]), (32, 32))
  np.testing.assert_allclose(red_minus_blue[hottest], summaries.HEATMAP_WEIGHT * .5, atol=1e-5)
  np.testing.assert_allclose(red_minus_blue[coldest], -summaries.HEATMAP_WEIGHT * .5, atol=1e-5)
