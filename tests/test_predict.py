"""lpta.predict prepares a user's image as the run's evaluation images were made."""

import ml_collections
import numpy as np
import pytest

from lpta import predict


def _data(name, **fields):
  return ml_collections.ConfigDict({'name': name, **fields})


def _save(tmp_path, array, name='image.png'):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  Image.fromarray(array).save(tmp_path / name)
  return str(tmp_path / name)


def _quarters(height: int, width: int) -> np.ndarray:
  """uint8 [height, width, 3]: columns in quarters 0 | 40 | 200 | 255, so that the left and
  right halves differ and the central half is 40 then 200."""
  row = np.repeat(np.array([0, 40, 200, 255], np.uint8), width // 4)
  return np.broadcast_to(row[None, :, None], (height, width, 3)).copy()


def test_each_data_set_frames_its_evaluation_images_its_own_way():
  assert predict.evaluation_framing(_data('imagenet2012')) == 224 / 256
  assert predict.evaluation_framing(_data('stanford_dogs')) == 1.
  assert predict.evaluation_framing(_data('caltech_birds2011', crop_to_box=True)) is None
  for name in ('cifar10', 'fashion_mnist', 'translated_fashion_mnist', 'synthetic', 'none'):
    assert predict.evaluation_framing(_data(name)) == 1.


def test_a_wide_image_is_resized_by_its_short_side_and_centre_cropped(tmp_path):
  path = _save(tmp_path, _quarters(32, 64))
  array, note = predict.read_image(path, (16, 16, 3), predict.evaluation_framing(_data('cifar10')))
  assert note == 'resized from 64×32 to 32×16 and centre-cropped to 16×16'
  # The central half (columns 16 to 47) halved: 8 columns of 40, then 8 of 200; the outer
  # quarters (0 and 255) are cut off rather than squashed in. Bilinear blends the two columns at
  # the edge: a 2× reduction weighs the 4 nearest source columns 1/8, 3/8, 3/8, 1/8.
  expected = np.array([40] * 7 + [60, 180] + [200] * 7)
  np.testing.assert_array_equal(array[..., 0], np.broadcast_to(expected, (16, 16)))
  assert np.all(array[..., 0] == array[..., 2])


def test_imagenet_images_keep_the_central_224_of_256(tmp_path):
  path = _save(tmp_path, _quarters(48, 96))
  array, note = predict.read_image(path, (28, 28, 3),
                                   predict.evaluation_framing(_data('imagenet2012')))
  # The central square of side 48 · 224/256 = 42 (columns 27 to 68, within the middle half 24
  # to 71), resized to 28: as resizing the short side to 28 · 256/224 = 32 (96×48 -> 64×32) and
  # cropping the central 28×28.
  assert note == 'resized from 96×48 to 64×32 and centre-cropped to 28×28'
  assert array.shape == (28, 28, 3)
  assert array[..., 0].min() == 40 and array[..., 0].max() == 200
  np.testing.assert_array_equal(array[:, :12, 0], 40)
  np.testing.assert_array_equal(array[:, -12:, 0], 200)


def test_cub_box_crops_are_resized_without_keeping_the_aspect_ratio(tmp_path):
  path = _save(tmp_path, _quarters(32, 64))
  array, note = predict.read_image(path, (16, 16, 3),
                                   predict.evaluation_framing(_data('caltech_birds2011')))
  assert note == ("resized from 64×32 to 16×16, not keeping its aspect ratio, as the run's "
                  'evaluation images were')
  # All four quarters are there, 4 columns each.
  np.testing.assert_array_equal(array[0, [0, 5, 10, 15], 0], [0, 40, 200, 255])


@pytest.mark.parametrize('size, note', [
    ((32, 32), 'resized from 32×32 to 16×16'),  # the same aspect ratio: nothing cropped
    ((16, 24), 'centre-cropped from 24×16 to 16×16'),  # the short side fits: only cropped
])
def test_notes_say_only_what_was_done(tmp_path, size, note):
  path = _save(tmp_path, np.zeros((*size, 3), np.uint8))
  array, written = predict.read_image(path, (16, 16, 3))
  assert written == note and array.shape == (16, 16, 3)
