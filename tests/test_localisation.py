"""The localisation evaluator: scores of hand-made maps, and its files on a toy run."""

import csv
import json

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest

from configs import common
from lpta import evaluators
from lpta.errors import ConfigError
from lpta.evaluators import localisation
import toy_runs

BOX = np.array([2, 3, 6, 8])  # rows 2..5, columns 3..7: 4 × 5 = 20 pixels of a 10 × 10 image


def _config(**overrides):
  config = localisation.Localisation.default_config()
  config.update(overrides)
  return config


def _box_map():
  return localisation.box_mask(BOX, 10, 10).astype(np.float32)


def test_a_map_that_is_the_box_scores_one_everywhere():
  scores = localisation.scores(_box_map(), BOX, _box_map() > 0, _config())
  assert scores == {'pointing': 1., 'energy': 1., 'box_iou': 1., 'box_accuracy': 1.,
                    'jaccard': 1.}


def test_a_delta_in_the_box_points_into_it_with_all_its_energy():
  delta = np.zeros((10, 10), np.float32)
  delta[4, 5] = 1.
  scores = localisation.scores(delta, BOX, _box_map() > 0, _config())
  assert scores['pointing'] == 1. and scores['energy'] == 1.
  assert scores['box_iou'] == pytest.approx(1 / 20)  # a 1-pixel box inside a 20-pixel one
  assert scores['jaccard'] == pytest.approx(1 / 20)
  assert scores['box_accuracy'] == 0.


def test_a_uniform_map_puts_the_box_area_share_in_the_box():
  scores = localisation.scores(np.ones((10, 10), np.float32), BOX, _box_map() > 0, _config())
  assert scores['energy'] == pytest.approx(20 / 100)
  assert scores['box_iou'] == pytest.approx(20 / 100)  # its one component is the whole image
  assert scores['pointing'] == 0.  # the first maximum, pixel (0, 0), is outside the box


def test_pointing_tolerance_counts_pixels_near_the_box():
  # Pixel (0, 5) has its centre at row 0.5: 1.5 pixels above the box's top edge (row 2).
  assert not localisation.pointing_hit((0, 5), BOX, 1.)
  assert localisation.pointing_hit((0, 5), BOX, 1.5)
  assert localisation.pointing_hit((5, 7), BOX, 0.) and not localisation.pointing_hit((5, 8), BOX, 0.)


def test_the_box_comes_from_the_largest_component_above_the_threshold():
  saliency = np.zeros((10, 10), np.float32)
  saliency[0:2, 0:2] = 1.  # 4 pixels at the maximum
  saliency[5:8, 4:9] = .5  # 15 pixels at half of it
  assert list(localisation.largest_component_box(saliency >= .2)) == [5, 4, 8, 9]
  assert list(localisation.largest_component_box(saliency >= .8)) == [0, 0, 2, 2]


def test_box_iou_by_hand():
  assert localisation.box_iou(np.array([0, 0, 2, 2]), np.array([1, 1, 3, 3])) == pytest.approx(
      1 / 7)
  assert localisation.box_iou(np.array([0, 0, 2, 2]), np.array([2, 2, 4, 4])) == 0.


def test_the_centre_prior_peaks_at_the_centre():
  prior = localisation.centre_prior(6, 8)
  assert prior.shape == (6, 8)
  assert prior[2:4, 3:5].min() == prior.max()
  np.testing.assert_allclose(prior, prior[::-1, ::-1])


class BrightQuarter(nn.Module):
  """A learned map [B, 2, 2] that is 1 on the top-left cell; a spatial layer for Grad-CAM."""

  @nn.compact
  def __call__(self, images, *, train):
    del train
    features = nn.Conv(2, (1, 1), name='features')(images)
    logits = features.mean((1, 2))
    learned = jnp.broadcast_to(jnp.array([[1., 0.], [0., 0.]]), (images.shape[0], 2, 2))
    return logits, {'map': learned}


def test_evaluate_run_writes_results_csv_and_figures(tmp_path):
  data_config = common.get_config().data
  data_config.update({'name': 'synthetic', 'synthetic_image_shape': (8, 8, 1),
                      'synthetic_num_classes': 2, 'synthetic_num_train': 4,
                      'synthetic_num_test': 10})
  run = toy_runs.toy_run(BrightQuarter(), (8, 8, 1), 2, tmp_path, maps='map',
                         data_config=data_config)
  config = _config(maps=('attention', 'gradcam'), batch_size=4, foreground_threshold=0.)
  results = evaluators.evaluate_run(run, 'localisation', config)
  assert set(results) == {f'{metric}_{kind}' for metric in localisation.METRICS
                          for kind in ('attention', 'gradcam', 'centre')}
  # Random pixels above 0 almost everywhere: the foreground box is (nearly) the whole image,
  # so every pointing hits and the attention map (its top-left 4×4 block after upsampling
  # plus the bilinear fall-off) puts all its energy in the box.
  images = evaluators.examples(run, config)['image']
  boxes = [localisation.bounding_box(m) for m in localisation.foreground_masks(images, 0.)]
  assert results['pointing_centre'] == np.mean(
      [localisation.pointing_hit((4, 4), box, 0.) for box in boxes])
  assert results['energy_attention'] == pytest.approx(np.mean([
      localisation.scores(_upsampled(), box, localisation.box_mask(box, 8, 8), config)['energy']
      for box in boxes]), rel=1e-5)
  directory = tmp_path / 'eval' / 'localisation'
  record = json.loads((directory / 'results.json').read_text())
  assert record['results'] == results and record['config']['maps'] == ['attention', 'gradcam']
  with open(directory / 'per_example.csv') as file:
    rows = list(csv.DictReader(file))
  assert len(rows) == 10 and float(rows[3]['energy_centre']) <= 1.
  assert (directory / 'scores.png').stat().st_size > 0
  assert (directory / 'examples.png').stat().st_size > 0


def _upsampled():
  """The learned map [[1, 0], [0, 0]] upsampled bilinearly (half-pixel centres) to 8×8."""
  ramp = np.array([1., 1., .875, .625, .375, .125, 0., 0.])
  return np.outer(ramp, ramp)


def test_bad_fields_are_refused_with_their_name():
  with pytest.raises(ConfigError, match='--eval.maps'):
    localisation.Localisation(_config(maps=('saliency',)))
  with pytest.raises(ConfigError, match='--eval.box_threshold'):
    localisation.Localisation(_config(box_threshold=1.5))
  with pytest.raises(ConfigError, match='--eval.colour is not a field'):
    localisation.Localisation(_config(colour='red'))
