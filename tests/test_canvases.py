"""The translated and cluttered canvases, and RAM trained on them through the unchanged loop."""

import json

import numpy as np
import pytest

from lpta import data
from lpta import train
from lpta.data import canvases
from lpta.errors import ConfigError
from test_glimpse import tiny_ram_config
from test_train import event_tags


def constant_images(count: int, size: int = 28) -> np.ndarray:
  """Image i is filled with the value i + 1 (uint8 [count, size, size, 1])."""
  return np.broadcast_to(np.arange(1, count + 1, dtype=np.uint8)[:, None, None, None],
                         (count, size, size, 1)).copy()


def test_translated_canvas_holds_the_item_in_its_box_and_black_elsewhere():
  images = np.random.default_rng(0).integers(1, 256, (50, 28, 28, 1), dtype=np.uint8)
  placed, boxes = canvases.place_on_canvases(images, 60, 0, 8, seed=3)
  assert placed.shape == (50, 60, 60, 1) and boxes.dtype == np.int32
  for canvas, image, (top, left, bottom, right) in zip(placed, images, boxes):
    assert 0 <= top and 0 <= left and bottom <= 60 and right <= 60
    assert (bottom - top, right - left) == (28, 28)
    np.testing.assert_array_equal(canvas[top:bottom, left:right], image)
    outside = canvas.copy()
    outside[top:bottom, left:right] = 0
    assert not outside.any()
  # Positions are spread over the canvas, not fixed.
  assert len({tuple(box[:2]) for box in boxes}) > 40


def test_clutter_comes_from_other_images_and_never_hides_the_item():
  images = constant_images(30)
  placed, boxes = canvases.place_on_canvases(images, 60, 4, 8, seed=4)
  for index, (canvas, (top, left, bottom, right)) in enumerate(zip(placed, boxes)):
    inside = canvas[top:bottom, left:right]
    assert np.all(inside >= index + 1)  # the pixelwise maximum keeps the item
    outside = canvas.copy()
    outside[top:bottom, left:right] = 0
    values = set(np.unique(outside)) - {0}
    assert values and index + 1 not in values  # pieces of other images only
    assert np.count_nonzero(outside) <= 4 * 8 * 8


def test_canvases_depend_only_on_their_seed():
  images = constant_images(20)
  first = canvases.place_on_canvases(images, 40, 2, 6, seed=1)
  again = canvases.place_on_canvases(images, 40, 2, 6, seed=1)
  other = canvases.place_on_canvases(images, 40, 2, 6, seed=2)
  np.testing.assert_array_equal(first[0], again[0])
  np.testing.assert_array_equal(first[1], again[1])
  assert not np.array_equal(first[1], other[1])


@pytest.mark.parametrize('overrides, message', [
    ({'data.clutter_pieces': 2}, 'translated_fashion_mnist has none'),
    ({'data.name': 'cluttered_fashion_mnist'}, 'cluttered_fashion_mnist at least one'),
    ({'data.canvas_size': 20}, 'config.data.canvas_size'),
    ({'data.clutter_piece_size': 40, 'data.name': 'cluttered_fashion_mnist',
      'data.clutter_pieces': 1}, 'at most 28'),
    ({'data.random_flip': True}, 'random_flip=False'),
    ({'data.zca': True}, 'zca=False'),
])
def test_bad_canvas_fields_name_the_fix(overrides, message):
  with pytest.raises(ConfigError, match=message):
    data.get(tiny_ram_config(**overrides).data)


def canvas_run_config(tmp_path, **overrides):
  """Tiny RAM on 32×32 canvases of TFDS-mocked Fashion-MNIST: 2 epochs of 3 steps."""
  settings = {'data.data_dir': str(tmp_path / 'tfds'), 'data.canvas_size': 32,
              'data.validation_split': 8, 'batch_size': 8, 'eval_batch_size': 8,
              'num_epochs': 2, 'eval_every_epochs': 1, 'log_every_steps': 1, 'num_attention_images': 2,
              'optimizer.name': 'adam', 'optimizer.learning_rate': 1e-3,
              'model.eval_samples': 2}
  settings.update(overrides)
  return tiny_ram_config(**settings)


def test_ram_trains_on_canvases_and_reports_distances_and_glimpse_figures(tmp_path):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  config = canvas_run_config(tmp_path)
  workdir = tmp_path / 'run'
  with tfds.testing.mock_data(num_examples=32):
    dataset = data.get(config.data).load()
    _, metrics = train.train_and_evaluate(config, workdir)

  assert dataset.image_shape == (32, 32, 1)
  assert dataset.shards['validation']['box'].shape == (8, 4)
  # Glimpse 1 looks at the canvas centre (16, 16): its distance is that of the boxes' centres.
  boxes = dataset.shards['test']['box'].astype(np.float64)
  centres = np.stack([(boxes[:, 1] + boxes[:, 3]) / 2, (boxes[:, 0] + boxes[:, 2]) / 2], 1)
  for name in ('test_glimpse_distance_1', 'test_centre_distance'):
    np.testing.assert_allclose(metrics[name], np.linalg.norm(centres - 16, axis=1).mean(),
                               rtol=1e-5)
  assert {f'test_glimpse_distance_{t}' for t in (1, 2, 3)} | {
      'test_sampled_accuracy', 'test_random_location_distance'} <= set(metrics)
  assert {'train_reinforce_loss', 'train_baseline_loss', 'train_reward',
          'attention_maps'} <= event_tags(workdir)
  figures = sorted((workdir / 'attention').glob('*.png'))
  assert [f.name for f in figures] == ['step_00000003.png', 'step_00000006.png']
  saved = json.loads((workdir / 'config.json').read_text())
  assert saved['model']['name'] == 'ram'


def test_glimpse_figure_outlines_each_patch_in_its_step_colour():
  from lpta import summaries  # pylint: disable=g-import-not-at-top
  images = np.zeros((1, 32, 32, 1), np.uint8)
  # Step 1 at the centre, step 2 at the top-left corner; one 8-pixel patch each.
  locations = np.array([[[0., 0.], [-1., -1.]]])
  grid = summaries.glimpse_grid(images, locations, sides=(8,))
  scale = 96 // 32
  assert grid.shape == (32 * scale, 2 * 32 * scale, 3)
  red, lime = np.array([1., 0., 0.]), np.array([0., 1., 0.])
  # The centre patch spans pixels 12..19: its outline starts at 12·scale.
  np.testing.assert_array_equal(grid[12 * scale, 12 * scale], red)
  np.testing.assert_array_equal(grid[20 * scale - 1, 16 * scale], red)
  # The corner patch spans −4..3: only its bottom and right edges are on the image.
  np.testing.assert_array_equal(grid[4 * scale - 1, 0], lime)
  np.testing.assert_array_equal(grid[0, 4 * scale - 1], lime)
  assert not grid[:, 32 * scale:].any()  # the original, black


def test_the_oracle_looks_at_each_items_centre_in_training_evaluation_and_figures(tmp_path):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  config = canvas_run_config(tmp_path, **{'model.policy': 'oracle', 'num_epochs': 1})
  workdir = tmp_path / 'run'
  with tfds.testing.mock_data(num_examples=32):
    _, metrics = train.train_and_evaluate(config, workdir)
  # With the means (evaluation), every glimpse is at the item's centre: the box centre in pixels
  # and back to [-1, 1]² and pixels again, exact to float32 rounding of values below 32.
  for t in (1, 2, 3):
    assert metrics[f'test_glimpse_distance_{t}'] < 1e-4
  assert metrics['test_centre_distance'] > 1.
  assert [f.name for f in (workdir / 'attention').glob('*.png')] == ['step_00000003.png']


def test_the_uniform_warm_up_silences_reinforce_for_its_share_of_the_steps(tmp_path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  # 6 steps; uniform_warmup 0.5: steps 0, 1, 2 (progress 0, 1/6, 2/6) look uniformly at random,
  # so their log-probabilities and the REINFORCE term are exactly 0; steps 3, 4, 5 do not.
  config = canvas_run_config(tmp_path, **{'model.uniform_warmup': 0.5})
  workdir = tmp_path / 'run'
  with tfds.testing.mock_data(num_examples=32):
    train.train_and_evaluate(config, workdir)
  reinforce = {}
  for event_file in workdir.glob('events.out.tfevents.*'):
    for event in tf.compat.v1.train.summary_iterator(str(event_file)):
      for value in event.summary.value:
        if value.tag == 'train_reinforce_loss':
          reinforce[event.step] = float(tf.make_ndarray(value.tensor))
  # Step s is logged after s steps: 1, 2, 3 are the warm-up's, 4, 5, 6 the policy's.
  assert sorted(reinforce) == [1, 2, 3, 4, 5, 6]
  assert [reinforce[step] for step in (1, 2, 3)] == [0., 0., 0.]
  assert all(reinforce[step] != 0 for step in (4, 5, 6))
