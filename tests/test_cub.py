"""lpta.data.cub: CUB-200-2011 box crops on hand-made TFDS examples (red birds in blue images)."""

import functools
import io
import os
import subprocess
import sys

import ml_collections
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from lpta import data
from lpta import errors

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RED, BLUE = (255, 0, 0), (0, 0, 255)
SIZE = 80  # the default image_size of caltech_birds2011


def _data_config(**overrides) -> ml_collections.ConfigDict:
  fields = dict(
      name='caltech_birds2011', data_dir=None, manual_dir=None, zca=False, zca_epsilon=1e-2,
      random_crop_padding=4, random_flip=True, image_size=None, train_split='train',
      validation_split=0, crop_to_box=True)
  fields.update(overrides)
  return ml_collections.ConfigDict(fields)


def _bird(height, width, box, label, name, jpeg=False):
  """A blue image [height, width] with a red box (top, left, bottom, right) in pixels and a
  segmentation mask of the box's left half; the TFDS example of it (image as PNG, or JPEG)."""
  top, left, bottom, right = box
  image = np.full((height, width, 3), BLUE, np.uint8)
  image[top:bottom, left:right] = RED
  mask = np.zeros((height, width, 1), np.uint8)
  mask[top:bottom, left:(left + right) // 2] = 255
  if jpeg:
    # Full-resolution colour, so that only the 8 × 8 blocks' rounding alters the colours.
    image = tf.io.encode_jpeg(image, quality=100, chroma_downsampling=False).numpy()
  return {'image': image, 'segmentation_mask': mask, 'label': label, 'label_name': name,
          'bbox': tfds.features.BBox(top / height, left / width, bottom / height, right / width),
          'image/filename': f'{name}.jpg'}


# Several sizes and box shapes; the boxes' widths are even, so the mask's left half ends
# exactly in the middle of the 80×80 crop.
TRAIN = [
    _bird(60, 90, (12, 30, 42, 76), 5, 'laysan_albatross'),
    _bird(100, 120, (20, 30, 60, 90), 17, 'cardinal'),
    _bird(200, 150, (40, 10, 200, 90), 199, 'common_yellowthroat'),
    _bird(44, 44, (0, 0, 44, 44), 0, 'black_footed_albatross'),
    _bird(50, 70, (5, 6, 45, 66), 17, 'cardinal'),
]
# A JPEG whose box lies on its 8 × 8 blocks, so red stays red.
TEST = [_bird(128, 192, (16, 32, 112, 160), 42, 'jpeg_bird', jpeg=True),
        _bird(100, 120, (20, 30, 60, 90), 7, 'pelican')]


def _as_dataset(builder, split, decoders=None, read_config=None, shuffle_files=False):
  """tfds.testing.mock_data's replacement of the TFDS reader: TRAIN or TEST, encoded and decoded
  as TFDS does (for `split` 'train...' or 'test')."""
  del read_config, shuffle_files
  features = builder.info.features
  examples = TRAIN if str(split).startswith('train') else TEST
  encoded = [features.encode_example({  # JPEG bytes as a file, as the builder passes them
      name: io.BytesIO(value) if isinstance(value, bytes) else value
      for name, value in example.items()}) for example in examples]
  specs = features.get_serialized_info()
  records = tf.data.Dataset.from_generator(
      lambda: iter(encoded), output_types=tf.nest.map_structure(lambda t: t.dtype, specs),
      output_shapes=tf.nest.map_structure(lambda t: t.shape, specs))
  return records.map(functools.partial(features.decode_example, decoders=decoders))


def _load(**overrides):
  with tfds.testing.mock_data(as_dataset_fn=_as_dataset):
    return data.get(_data_config(**overrides)).load()


@pytest.fixture(scope='module')
def crops():
  """The data set of crops (the protocol), with the last two train examples held out."""
  return _load(validation_split=2)


# crops, labels and splits


def test_images_are_the_box_crops_resized_with_their_masks(crops):
  for split, arrays in crops.shards.items():
    assert arrays['image'].shape[1:] == (SIZE, SIZE, 3) and arrays['image'].dtype == np.uint8
    images = arrays['image'].reshape(len(arrays['image']), -1, 3).astype(int)
    tolerance = 2 if split == 'test' else 0  # the test split's first image is a JPEG
    np.testing.assert_allclose(images, np.broadcast_to(RED, images.shape), atol=tolerance)
    if split == 'train':
      continue  # train batches carry no masks or boxes
    # The mask covers the box's left half: the crop's left 40 columns.
    assert arrays['segmentation'].dtype == bool
    assert arrays['segmentation'][:, :, :SIZE // 2].all()
    assert not arrays['segmentation'][:, :, SIZE // 2:].any()
    np.testing.assert_array_equal(arrays['box'], np.tile([[0, 0, SIZE, SIZE]],
                                                         (len(arrays['box']), 1)))
  assert crops.image_shape == (SIZE, SIZE, 3) and crops.num_classes == 200


def test_labels_and_species_names_are_kept(crops):
  np.testing.assert_array_equal(crops.shards['train']['label'], [5, 17, 199])
  np.testing.assert_array_equal(crops.shards['validation']['label'], [0, 17])
  np.testing.assert_array_equal(crops.shards['test']['label'], [42, 7])
  assert crops.shards['test']['label'].dtype == np.int32
  names = crops.class_names
  assert len(names) == 200
  assert (names[5], names[199], names[42], names[7]) == (
      'laysan_albatross', 'common_yellowthroat', 'jpeg_bird', 'pelican')
  assert names[3] == '3'  # a species without examples keeps its number


def test_the_validation_split_is_the_end_of_train_and_training_never_reads_it(crops):
  whole = _load()

  np.testing.assert_array_equal(whole.shards['train']['label'], [5, 17, 199, 0, 17])
  np.testing.assert_array_equal(crops.shards['validation']['label'],
                                whole.shards['train']['label'][3:])
  assert whole.num_examples == {'train': 5, 'test': 2}
  assert crops.num_examples == {'train': 3, 'validation': 2, 'test': 2}
  assert crops.eval_splits == ('validation', 'test')
  # Two epochs of training see the first three examples only (label 0 is held out).
  batches = crops.train_batches(local_batch_size=3, seed=0)
  seen = np.concatenate([next(batches)['label'] for _ in range(2)])
  assert sorted(seen) == [5, 5, 17, 17, 199, 199]


def test_train_batches_hold_images_and_labels_and_eval_batches_add_box_and_segmentation(crops):
  train_batch = next(crops.train_batches(local_batch_size=2, seed=0))
  (eval_batch,) = crops.eval_batches('test', local_batch_size=4)

  assert set(train_batch) == {'image', 'label'}
  assert set(eval_batch) == {'image', 'label', 'box', 'segmentation', 'mask'}
  assert eval_batch['box'].shape == (4, 4) and eval_batch['box'].dtype == np.int32
  assert eval_batch['segmentation'].shape == (4, SIZE, SIZE)
  np.testing.assert_array_equal(eval_batch['mask'], [1, 1, 0, 0])


def test_whole_images_carry_the_box_and_mask_moved_with_them():
  dataset = _load(crop_to_box=False, image_size=40, validation_split=3)
  # The 100 × 120 image with box (20, 30, 60, 90), resized to 40 × 40.
  test = dataset.shards['test']
  image, box, segmentation = test['image'][1], test['box'][1], test['segmentation'][1]

  np.testing.assert_array_equal(box, [8, 10, 24, 30])
  top, left, bottom, right = box
  # Inside the box (less the pixel blended at each edge) red, outside it (beyond that) blue.
  inside = np.zeros((40, 40), bool)
  inside[top + 1:bottom - 1, left + 1:right - 1] = True
  near = np.zeros((40, 40), bool)
  near[top - 1:bottom + 1, left - 1:right + 1] = True
  np.testing.assert_array_equal(image[inside], np.broadcast_to(RED, (inside.sum(), 3)))
  np.testing.assert_array_equal(image[~near], np.broadcast_to(BLUE, ((~near).sum(), 3)))
  # The mask: the box's left half, columns 10 to 20.
  assert segmentation[top + 1:bottom - 1, left + 1:19].all()
  assert not segmentation[~near].any() and not segmentation[:, 21:].any()
  # Boxes round outwards: the 200 × 150 image's (40, 10, 200, 90) to rows 8 to 40 and columns
  # 2 to 24 (10 · 40 / 150 = 2.67), the 50 × 70 image's (5, 6, 45, 66) to rows 4 to 36 and
  # columns 3 to 38 (6 · 40 / 70 = 3.43, 66 · 40 / 70 = 37.71); the 44 × 44 image's is all of it.
  np.testing.assert_array_equal(dataset.shards['validation']['box'],
                                [[8, 2, 40, 24], [0, 0, 40, 40], [4, 3, 36, 38]])
  assert dataset.image_shape == (40, 40, 3)
  assert test['image'].shape == (2, 40, 40, 3)


def test_random_mock_examples_load(tmp_path):
  # tfds' own mock examples: random sizes, masks of other sizes, boxes whose corners may cross.
  with tfds.testing.mock_data(num_examples=6):
    dataset = data.get(_data_config(data_dir=str(tmp_path), image_size=16)).load()

  test = dataset.shards['test']
  assert dataset.shards['train']['image'].shape == (6, 16, 16, 3)
  assert test['segmentation'].shape == (6, 16, 16)
  np.testing.assert_array_equal(test['box'], np.tile([[0, 0, 16, 16]], (6, 1)))
  assert np.isfinite(dataset.statistics.std).all() and (dataset.statistics.std > 0).all()
  with tfds.testing.mock_data(num_examples=6):
    boxes = data.get(_data_config(image_size=16, crop_to_box=False)).load().shards['test']['box']
  top, left, bottom, right = boxes.T
  assert (0 <= top).all() and (top < bottom).all() and (bottom <= 16).all()
  assert (0 <= left).all() and (left < right).all() and (right <= 16).all()


# without loading


def test_shape_and_classes_are_known_without_tensorflow():
  script = ('import sys, ml_collections; from lpta import data; '
            f'config = ml_collections.ConfigDict({dict(_data_config())!r}); '
            'source = data.get(config); print(source.image_shape, source.num_classes, end=" "); '
            'config.image_size = 96; '
            'print(data.get(config).image_shape, source.object_boxes, '
            "[m for m in sys.modules if m.startswith('tensorflow')])")

  result = subprocess.run([sys.executable, '-c', script], cwd=REPO_ROOT, capture_output=True,
                          text=True, check=True)

  assert result.stdout.strip() == '(80, 80, 3) 200 (96, 96, 3) True []'


@pytest.mark.usefixtures('offline')
def test_missing_cub_names_its_archives_and_manual_dir_in_one_line(tmp_path):
  config = _data_config(data_dir=str(tmp_path / 'tfds'), manual_dir=str(tmp_path / 'manual'))

  with pytest.raises(errors.DataError) as raised:
    data.get(config).load()

  message = str(raised.value)
  assert '\n' not in message
  assert 'Put the original CUB_200_2011.tgz, segmentations.tgz in manual_dir' in message
  assert f'manual_dir={tmp_path / "manual"}' in message
  assert '--config.data.manual_dir=' in message


@pytest.mark.usefixtures('offline')
def test_the_cub_config_without_cub_fails_on_the_data_before_reading_its_source_run(tmp_path):
  from configs import cub_att2  # pylint: disable=g-import-not-at-top
  from lpta import train  # pylint: disable=g-import-not-at-top
  config = cub_att2.get_config()
  config.data.data_dir, config.init_from.workdir = str(tmp_path / 'tfds'), 'runs/x'
  with pytest.raises(errors.DataError, match='CUB_200_2011.tgz, segmentations.tgz'):
    train.train_and_evaluate(config, tmp_path / 'run')
  assert not (tmp_path / 'run').exists()


@pytest.mark.usefixtures('offline')
def test_preparing_without_opencv_says_to_install_it(tmp_path, monkeypatch):
  manual_dir = tmp_path / 'manual'
  manual_dir.mkdir()
  for name in ('CUB_200_2011.tgz', 'segmentations.tgz'):
    (manual_dir / name).write_bytes(b'')
  # TFDS's builder imports cv2 once it has the archives; here cv2 is missing.
  builder_class = tfds.builder_cls('caltech_birds2011')

  def split_generators(self, dl_manager):
    raise ModuleNotFoundError("No module named 'cv2'")

  monkeypatch.setattr(builder_class, '_split_generators', split_generators)
  config = _data_config(data_dir=str(tmp_path / 'tfds'), manual_dir=str(manual_dir))

  with pytest.raises(errors.DataError) as raised:
    data.get(config).load()

  message = str(raised.value)
  assert '\n' not in message
  assert 'needs OpenCV' in message and 'pip install opencv-python-headless' in message


@pytest.mark.parametrize('overrides, expected', [
    (dict(image_size=0), 'config.data.image_size=0 must be an integer >= 1'),
    (dict(image_size=-80), 'config.data.image_size=-80 must be an integer >= 1'),
    (dict(image_size=80.5), 'config.data.image_size=80.5 must be an integer'),
    (dict(crop_to_box='yes'), "config.data.crop_to_box='yes' must be True or False"),
    (dict(crop_to_box=None), 'config.data.crop_to_box=None must be True or False'),
    (dict(validation_split=-1), 'config.data.validation_split=-1'),
])
def test_bad_config_values_are_refused_naming_the_field(overrides, expected):
  with pytest.raises(errors.ConfigError, match=expected):
    data.get(_data_config(**overrides))


def test_a_missing_field_is_named_and_one_added_later_has_its_old_value():
  config = _data_config()
  del config['zca']
  with pytest.raises(errors.ConfigError, match="config.data.name='caltech_birds2011' needs "
                                               'config.data.zca, which the config does not set'):
    data.get(config)
  # Configs saved before crop_to_box existed cropped to the box.
  config = _data_config()
  del config['crop_to_box']
  assert data.get(config).config.crop_to_box is True


def test_a_validation_split_of_all_of_train_is_refused():
  with pytest.raises(errors.ConfigError, match='validation_split=5 leaves no training example'):
    _load(validation_split=5)
