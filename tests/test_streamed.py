"""lpta.data.streamed: crops of hand-made JPEGs, and the ImageNet pipeline on tfds mock data."""

import os
import types

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from configs import imagenet_resnet
from lpta import data
from lpta import errors
from lpta import train
from lpta.data import streamed

RED, BLUE = (255, 0, 0), (0, 0, 255)
NUM_EXAMPLES = 20  # mock examples in each split (the splits hold the same examples)
IMAGE_SIZE = 16


def _jpeg(image: np.ndarray) -> tf.Tensor:
  return tf.io.encode_jpeg(image, quality=100)


def _imagenet_config(tmp_path):
  config = imagenet_resnet.get_config()
  config.data.data_dir = str(tmp_path / 'tfds')
  config.data.image_size = IMAGE_SIZE
  return config


@pytest.fixture
def imagenet(tmp_path):
  """The streamed imagenet2012 pipeline on NUM_EXAMPLES random JPEGs of random sizes."""
  with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
    yield data.get(_imagenet_config(tmp_path).data).load()


def _labels(batches) -> np.ndarray:
  return np.concatenate([batch['label'] for batch in batches])


# crops


def test_centre_crop_is_the_central_square_of_side_224_256_of_the_short_side():
  # 256 × 512: the crop is the 224 × 224 square at (16, 144); both are multiples of the JPEG
  # block size, so the red square's colour does not bleed into the blue frame or back.
  image = np.full((256, 512, 3), BLUE, np.uint8)
  image[16:240, 144:368] = RED

  crop = streamed.centre_crop(_jpeg(image), 32).numpy()

  assert crop.shape == (32, 32, 3) and crop.dtype == np.uint8
  np.testing.assert_allclose(crop.reshape(-1, 3), np.broadcast_to(RED, (32 * 32, 3)), atol=12)


def test_random_resized_crops_cover_8_to_100_percent_with_aspect_ratio_3_4_to_4_3():
  # Red is the column and green the row of each pixel, so a crop shows where its window was.
  rows, columns = np.meshgrid(np.arange(192), np.arange(256), indexing='ij')
  image = np.stack([columns, rows, np.zeros_like(rows)], -1).astype(np.uint8)
  image_bytes = _jpeg(image)

  areas, aspect_ratios = [], []
  for i in range(40):
    crop = streamed.random_resized_crop(image_bytes, tf.constant([7, i], tf.int64),
                                               64).numpy().astype(float)
    assert crop.shape == (64, 64, 3)
    # The first and last output pixels average about one 64th of the window's width.
    width = (crop[..., 0].max() - crop[..., 0].min()) * 64 / 63
    height = (crop[..., 1].max() - crop[..., 1].min()) * 64 / 63
    areas.append(width * height / (192 * 256))
    aspect_ratios.append(width / height)

  assert 0.08 * 0.9 <= min(areas) and max(areas) <= 1.02
  assert min(areas) < 0.3 and max(areas) > 0.6  # the draws span the range
  assert 0.75 * 0.9 <= min(aspect_ratios) and max(aspect_ratios) <= 4 / 3 * 1.1
  again = streamed.random_resized_crop(image_bytes, tf.constant([7, 39], tf.int64), 64)
  np.testing.assert_array_equal(again.numpy(), crop)


# the pipeline on mock data


def test_load_counts_the_splits_and_uses_imagenet_statistics(imagenet):
  assert imagenet.num_examples == {'train': NUM_EXAMPLES, 'test': NUM_EXAMPLES}
  assert imagenet.tfds_splits == {'train': 'train', 'test': 'validation'}
  assert imagenet.eval_splits == ('test',)
  assert (imagenet.image_shape, imagenet.num_classes) == ((IMAGE_SIZE, IMAGE_SIZE, 3), 1000)
  assert imagenet.class_names[0] == 'n01440764'  # ImageNet's classes are WordNet ids
  np.testing.assert_array_equal(imagenet.statistics.mean, np.float32([0.485, 0.456, 0.406]))
  np.testing.assert_array_equal(imagenet.statistics.std, np.float32([0.229, 0.224, 0.225]))
  assert imagenet.statistics.zca_matrix is None


def test_each_train_epoch_is_a_new_order_of_the_whole_split(imagenet):
  with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
    batches = imagenet.train_batches(local_batch_size=4, seed=0)
    first_epoch, second_epoch = ([next(batches) for _ in range(5)] for _ in range(2))
    all_labels = _labels(imagenet.eval_batches('test', NUM_EXAMPLES))

  for batch in first_epoch:
    assert batch['image'].shape == (4, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert batch['image'].dtype == np.uint8 and batch['label'].dtype == np.int32
  assert sorted(_labels(first_epoch)) == sorted(_labels(second_epoch)) == sorted(all_labels)
  assert not np.array_equal(_labels(first_epoch), _labels(second_epoch))


def test_resumed_train_batches_equal_the_uninterrupted_ones(imagenet):
  with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
    uninterrupted = imagenet.train_batches(local_batch_size=4, seed=3)
    expected = [next(uninterrupted) for _ in range(9)]
    resumed = imagenet.train_batches(local_batch_size=4, seed=3, start_step=3)  # epoch 0, step 3
    actual = [next(resumed) for _ in range(6)]  # into the second epoch (5 steps per epoch)
    other_seed = next(imagenet.train_batches(local_batch_size=4, seed=4))

  for resumed_batch, batch in zip(actual, expected[3:]):
    np.testing.assert_array_equal(resumed_batch['image'], batch['image'])
    np.testing.assert_array_equal(resumed_batch['label'], batch['label'])
  assert not np.array_equal(other_seed['image'], expected[0]['image'])


def test_eval_batches_cover_the_validation_split_once_with_padding(imagenet):
  with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
    batches = list(imagenet.eval_batches('test', local_batch_size=8))
    again = list(imagenet.eval_batches('test', local_batch_size=8))
    figure_images = imagenet.first_examples(3)['image']

  assert [batch['mask'].sum() for batch in batches] == [8, 8, 4]
  assert not batches[-1]['image'][4:].any() and not batches[-1]['label'][4:].any()
  np.testing.assert_array_equal(_labels(batches), _labels(again))
  np.testing.assert_array_equal(figure_images, batches[0]['image'][:3])


def test_a_batch_larger_than_the_shard_is_refused(imagenet):
  with pytest.raises(errors.ConfigError, match=f'larger than the {NUM_EXAMPLES} train examples'):
    imagenet.train_batches(local_batch_size=NUM_EXAMPLES + 1, seed=0)


@pytest.mark.usefixtures('offline')
def test_missing_imagenet_names_the_archives_to_put_in_manual_dir(tmp_path):
  config = _imagenet_config(tmp_path).data
  config.manual_dir = str(tmp_path / 'manual')

  with pytest.raises(errors.DataError) as raised:
    data.get(config).load()

  message = str(raised.value)
  assert '\n' not in message
  assert 'ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar in manual_dir' in message


def test_imagenet_config_trains_and_evaluates_on_mock_data(tmp_path):
  config = _imagenet_config(tmp_path)
  config.data.image_size = 32
  config.batch_size = config.eval_batch_size = 8
  config.num_epochs = 1
  config.num_attention_images = 2

  with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
    state, test_metrics = train.train_and_evaluate(config, tmp_path / 'run')

  assert int(state.step) == NUM_EXAMPLES // 8
  assert state.params['classifier']['kernel'].shape == (512, 1000)
  assert (tmp_path / 'run' / 'checkpoints' / '2').is_dir()
  assert np.isfinite(test_metrics['test_loss'])
  assert (tmp_path / 'run' / 'attention' / 'step_00000002.png').exists()


@pytest.mark.parametrize('train_split, expected', [
    ('train', ('train[0:900]', 'train[900:1000]')),
    ('train[:500]', ('train[0:400]', 'train[400:500]')),
    ('train[10%:]', ('train[100:900]', 'train[900:1000]')),
])
def test_the_validation_split_is_held_out_of_the_end_of_the_train_split(train_split, expected):
  splits = tfds.core.SplitDict([tfds.core.SplitInfo(name='train', shard_lengths=[600, 400],
                                                    num_bytes=0)])
  builder = types.SimpleNamespace(info=types.SimpleNamespace(splits=splits))
  assert streamed._hold_out(builder, train_split, 100) == expected  # pylint: disable=protected-access
  with pytest.raises(errors.ConfigError, match='validation_split=100 leaves no training example '
                                               'of the 50 in train'):
    streamed._hold_out(builder, 'train[:50]', 100)  # pylint: disable=protected-access


# Stanford Dogs


def test_random_square_crops_are_full_height_squares_at_random_offsets():
  # Red is the column of each pixel: a crop of the 64 × 128 image shows where its window was.
  columns = np.broadcast_to(np.arange(128) * 2, (64, 128))
  image = np.stack([columns, np.zeros_like(columns), np.zeros_like(columns)], -1).astype(np.uint8)
  image_bytes = _jpeg(image)

  lefts = []
  for i in range(20):
    crop = streamed.random_square_crop(image_bytes, tf.constant([5, i], tf.int64),
                                       32).numpy().astype(float)
    assert crop.shape == (32, 32, 3)
    # The window spans 64 columns (red 128 levels): the first and last output pixels average
    # the window's first and last two columns.
    red = crop[..., 0].mean(0)
    assert red[-1] - red[0] == pytest.approx(2 * 62, abs=6)
    lefts.append(red[0] / 2)
  assert min(lefts) < 16 and max(lefts) > 48  # offsets spread over [0, 64]
  again = streamed.random_square_crop(image_bytes, tf.constant([5, 19], tf.int64), 32)
  np.testing.assert_array_equal(again.numpy(), crop)


def _stanford_dogs_metadata(data_dir: str) -> None:
  """TFDS ships no mock metadata for stanford_dogs: write split sizes for the mock to read."""
  builder = tfds.builder('stanford_dogs', data_dir=data_dir)
  builder.info.set_splits(tfds.core.SplitDict([
      tfds.core.SplitInfo(name=name, shard_lengths=[NUM_EXAMPLES], num_bytes=0)
      for name in ('train', 'test')]))
  os.makedirs(builder.data_dir)
  builder.info.write_to_directory(builder.data_dir)


def test_stanford_dogs_streams_square_crops_of_images_of_several_sizes(tmp_path):
  config = _imagenet_config(tmp_path).data
  config.name = 'stanford_dogs'
  config.validation_split = 4
  _stanford_dogs_metadata(config.data_dir)
  with tfds.testing.mock_data(num_examples=NUM_EXAMPLES, data_dir=config.data_dir):
    raw = tfds.load('stanford_dogs', split='train', data_dir=config.data_dir)
    sizes = {tuple(example['image'].shape[:2]) for example in tfds.as_numpy(raw)}
    dogs = data.get(config).load()
    batch = next(dogs.train_batches(local_batch_size=4, seed=0))
    test_batch = next(dogs.eval_batches('test', local_batch_size=4))

  assert len(sizes) > 1  # the mock images have several sizes
  assert dogs.tfds_splits == {'train': 'train[0:16]', 'validation': 'train[16:20]',
                              'test': 'test'}
  assert (dogs.image_shape, dogs.num_classes) == ((IMAGE_SIZE, IMAGE_SIZE, 3), 120)
  assert batch['image'].shape == (4, IMAGE_SIZE, IMAGE_SIZE, 3)
  assert np.all((0 <= batch['label']) & (batch['label'] < 120))
  assert test_batch['image'].shape == (4, IMAGE_SIZE, IMAGE_SIZE, 3)


@pytest.mark.usefixtures('offline')
def test_missing_stanford_dogs_names_the_archives_to_put_in_manual_dir(tmp_path):
  config = _imagenet_config(tmp_path).data
  config.name = 'stanford_dogs'
  config.manual_dir = str(tmp_path / 'manual')

  with pytest.raises(errors.DataError) as raised:
    data.get(config).load()

  message = str(raised.value)
  assert '\n' not in message
  assert all(name in message for name in ('images.tar', 'annotation.tar', 'lists.tar'))
