"""CUB-200-2011 (TFDS `caltech_birds2011`): the birds cropped to their boxes, held in host memory.

Protocol (LTPA's CUB experiments: saumya-jetley/cd_ICLR18_LearnToPayAttention's
VGGNet/run_expt_cubs200.sh and VGGNet/models/models_CUBS200): 200 species and the official split,
train 5,994 and test 5,794 RGB images of many sizes. Each image is cropped to its ground-truth
bounding box (rounded to whole pixels) and resized to size × size, bilinear and antialiased, without
keeping the aspect ratio (as the Keras port's cv2.resize), size = config.data.image_size (None: 80,
the input of LTPA's att2 CUB model). With config.data.validation_split = n, the last n examples of
train_split are the validation split that ranks the best checkpoints (TFDS writes the examples in an
order shuffled by their keys, so these mix the species); the test split is only evaluated and
reported. TFDS labels are 0..199 (the files' class ids minus one).

Why host memory, as CIFAR (lpta.data.in_memory) rather than streamed (lpta.data.streamed): the
11,788 crops at 80 × 80 × 3 take 226 MB as uint8 (the masks of the evaluated images 41 MB more),
decoded and cropped once when a run starts (about 150 images/s on 2 CPU cores, so 80 s; less on
more cores). So the jitted train step draws random crops and flips as for CIFAR, batches are cut
deterministically, training resumes exactly at any step, and the mean/std (and the optional ZCA)
are fitted on the train crops. Streaming would decode the same JPEGs again every epoch. ZCA at
80 × 80 × 3 is a 19,200² matrix (1.5 GB, minutes to fit); the papers' CUB models do not use it.

Evaluation batches (validation and test) also carry, in the pixels of the size × size image:
  'box' int32 [b, 4]: the bird's box (top, left, bottom, right), bottom and right exclusive;
  'segmentation' bool [b, size, size]: CUB's segmentation mask (whose values grade the
    annotators' agreement), cropped and resized like the image, true where the resized mask is
    at least half bird. It is not called 'mask', the name of the padding mask of every
    evaluation batch (lpta.data.batching).
Train batches hold 'image' uint8 [b, size, size, 3] and 'label' int32 [b] only.

Its own field of `config.data` is `crop_to_box` (`CubSource.fields`): False keeps the whole
image, with the box (rounded outwards) and the mask moved with it, so that attention maps can be
scored against where the bird is (lpta.evaluators.localisation).

Offline preparation (lpta.data.tfds_preparation): put the original CUB_200_2011.tgz and
segmentations.tgz (https://www.vision.caltech.edu/datasets/cub_200_2011/) in manual_dir; the
first run prepares TFDS's records from them (checksums verified) in data_dir. TFDS's builder
reads the segmentations with OpenCV (pip install opencv-python-headless), needed only then.
"""

import numpy as np

from lpta import config_fields as cf
from lpta import data
from lpta import errors
from lpta.data import in_memory
from lpta.data import streamed
from lpta.data import tfds_preparation

DEFAULT_IMAGE_SIZE = 80
NUM_CLASSES = 200
EVAL_ONLY = ('box', 'segmentation')  # arrays that only evaluation batches carry
_SEGMENTATION_THRESHOLD = 128  # of 255: resized mask values from here on are the bird
_READ_BATCH_SIZE = 256  # crops per tf.data batch when reading a split into numpy


@data.register
class CubSource(in_memory.InMemorySource):
  """CUB-200-2011 box crops (or whole images) with boxes and segmentation masks."""
  names = ('caltech_birds2011',)
  object_boxes = True
  resized = True
  fields = (cf.Field('crop_to_box', True, "Crop each bird to its box (the LTPA protocol), or "
                     'False: the whole image, with the box and segmentation in evaluation '
                     'batches.', cf.BOOLEAN, added=True),)

  @property
  def image_size(self) -> int:
    """Side of the square images."""
    return self.config.image_size or DEFAULT_IMAGE_SIZE

  @property
  def image_shape(self):
    return (self.image_size, self.image_size, 3)

  @property
  def num_classes(self):
    return NUM_CLASSES

  def load(self) -> in_memory.Dataset:
    """The Dataset (in_memory.InMemorySource.load) with boxes and masks in its evaluation splits
    only."""
    dataset = super().load()
    for name in EVAL_ONLY:
      del dataset.shards['train'][name]
    return dataset

  def read(self):
    """(train_split, the test split, class names); each split {'image': uint8 [N, size, size,
    3], 'label': int32 [N], 'box': int32 [N, 4], 'segmentation': bool [N, size, size]}."""
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    try:
      tfds_preparation.prepared_builder(self.config)
    except errors.DataError as e:
      if isinstance(e.__cause__, ImportError):  # TFDS reads the segmentations with OpenCV
        raise errors.DataError(
            f'Preparing {self.config.name} needs OpenCV, which TFDS uses to read the '
            f'segmentation masks ({type(e.__cause__).__name__}); run `pip install '
            'opencv-python-headless` and start again.') from e.__cause__
      raise
    splits = tfds.load(self.config.name, split=[self.config.train_split, 'test'],
                       data_dir=self.config.data_dir, download=False)
    train, test = (read_crops(split, self.image_size, self.config.crop_to_box)
                   for split in splits)
    # The ClassLabel has no names; each example carries its species' name.
    class_names = [str(label) for label in range(NUM_CLASSES)]
    for arrays in (train, test):
      for label, name in zip(arrays['label'], arrays.pop('label_name')):
        class_names[label] = name.decode()
    return train, test, tuple(class_names)


def read_crops(examples, size: int, crop_to_box: bool) -> in_memory.Arrays:
  """The crops (`crop_example`) of a tf.data split of caltech_birds2011 examples, as numpy arrays
  in the split's order: 'image', 'label', 'box', 'segmentation' and 'label_name' bytes [N]."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  crops = examples.map(lambda example: crop_example(example, size, crop_to_box),
                       num_parallel_calls=tf.data.AUTOTUNE)
  batches = list(tfds.as_numpy(crops.batch(_READ_BATCH_SIZE)))
  return {name: np.concatenate([batch[name] for batch in batches]) for name in batches[0]}


def crop_example(example, size: int, crop_to_box: bool):
  """One example cropped and resized (the module docstring's protocol), in tf.

  Args:
    example: a decoded TFDS example, {'image': uint8 [H, W, 3]; 'segmentation_mask': uint8
      [H', W', 1] (H', W' = H, W in CUB); 'bbox': float32 [4], the bird's box (ymin, xmin,
      ymax, xmax) in fractions of the height and width; 'label': int64; 'label_name': string,
      ...}.
    size: side of the output.
    crop_to_box: crop to the box (True) or keep the whole image (False).

  Returns:
    {'image': uint8 [size, size, 3], 'label': int32, 'box': int32 [4] in the output's pixels,
    'segmentation': bool [size, size], 'label_name': string}.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  image, box, image_shape = _crop_and_resize(example['image'], example['bbox'], size,
                                             crop_to_box)
  mask, _, _ = _crop_and_resize(example['segmentation_mask'], example['bbox'], size,
                                crop_to_box)
  if crop_to_box:
    box = tf.constant([0, 0, size, size], tf.int32)
  else:  # the box scaled to the output, rounded outwards (in integers: no rounding errors)
    scaled, sides = box * size, tf.tile(image_shape, [2])
    box = tf.concat([scaled[:2] // sides[:2], -(-scaled[2:] // sides[2:])], axis=0)
  return {'image': image, 'label': tf.cast(example['label'], tf.int32), 'box': box,
          'segmentation': mask[..., 0] >= _SEGMENTATION_THRESHOLD,
          'label_name': example['label_name']}


def _crop_and_resize(image, bbox, size: int, crop_to_box: bool):
  """(uint8 [size, size, C]: the box's window of an image [H, W, C], or all of it, resized;
  int32 [4]: the box in the image's pixels, `pixel_box`; int32 [2]: (H, W))."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  image_shape = tf.shape(image)[:2]
  box = pixel_box(bbox, image_shape)
  if crop_to_box:
    image = image[box[0]:box[2], box[1]:box[3]]
  return streamed.resize(image, size), box, image_shape


def pixel_box(bbox, image_shape):
  """int32 [4] (top, left, bottom, right), bottom and right exclusive: a TFDS box float32 [4]
  (ymin, xmin, ymax, xmax) in fractions of image_shape int32 [2] (H, W), rounded to the nearest
  pixels, kept inside the image and at least one pixel high and wide."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  corners = tf.cast(tf.round(bbox * tf.cast(tf.tile(image_shape, [2]), tf.float32)), tf.int32)
  top_left = tf.clip_by_value(corners[:2], 0, image_shape - 1)
  bottom_right = tf.clip_by_value(corners[2:], top_left + 1, image_shape)
  return tf.concat([top_left, bottom_right], axis=0)
