"""Linear probes on a run's descriptors: do the features its classifier reads transfer?

  python -m lpta.evaluate --workdir=W --eval=probe [--eval.dataset=own] [--eval.C=0.1]

LTPA's claim (Jetley et al. 2018, §5) is that the attention descriptors g_a, frozen, serve other
data sets better than the plain network's features. This evaluator fits a linear classifier (a
probe) on frozen descriptors of a probe-train set and scores it on a probe-test set.

Descriptors x [D]: the inputs of every `nn.Dense` layer whose output has K = len(run.class_names)
units (the run's classifiers), flattened per example and concatenated in call order. For LTPA's
concat head that is [g_a^1, ..., g_a^n] (after the head's BatchNorm and ReLU when it has them:
exactly what the classifier reads), for its indep head g_a^1, ..., g_a^n, for any other model the
pooled features under its classifier. They are computed in inference mode, jitted, in batches.
A hidden Dense layer that happens to have K units counts as a classifier too.

Probe: z = (x − μ) / σ with the per-feature mean and std of probe-train (StandardScaler), then
multinomial logistic regression p(y = k | x) = softmax(W z + b)_k fitted by minimising
½‖W‖²_F + C Σ_i −log p(y_i | x_i) over probe-train (scikit-learn, L-BFGS, `max_iter`
iterations). The reference is the same probe on the raw pixels, flattened and scaled to [0, 1].

Probe sets (`dataset`):
  'digits': scikit-learn's bundled 8×8 digits (1797 images, 10 classes; no download), values
    0–16 scaled to uint8 round(v · 255 / 16), resized to the run's H × W (PIL bilinear) and
    repeated over its C channels; a stratified split (seed `seed`) puts ⌈test_fraction · 1797⌉
    of them in probe-test and the rest in probe-train (test_fraction 0.5: 899 and 898).
  'own': the run's own data set. Probe-train is a random sample, without repeats, of its train
    split (validation examples held out) as the data set's train batches give it (unaugmented
    for the data sets held in memory; streamed ones give their random train crops); probe-test
    is `split` (lpta.evaluators.examples), from the same loaded data set.
Probe-train keeps its first `max_train_examples` examples and probe-test its first
`max_examples`.

Results: probe_accuracy and pixel_probe_accuracy (on probe-test), descriptor_size (D),
train_examples and test_examples. Files, under <workdir>/eval/probe_<dataset>/: probe.csv
(features: descriptors or pixels, accuracy) and confusion.png (the descriptor probe's confusion
matrix on probe-test, true class by row). Fields: `Probe.fields`.
"""

import itertools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lpta import config_fields as cf
from lpta import data
from lpta import evaluators
from lpta import runs
from lpta.data import preprocessing
from lpta.errors import ConfigError
from lpta.errors import LptaError

DATASETS = ('digits', 'own')
DIGITS_EXAMPLES = 1797
DIGITS_CLASSES = 10
_DIGITS_MAX_VALUE = 16
_MAX_ANNOTATED_CLASSES = 20  # confusion matrices of more classes show no counts

Arrays = dict[str, np.ndarray]  # {'image': uint8 [N, H, W, C], 'label': int [N]}


def classifier_inputs(run: runs.Run, arrays, pixels: jax.Array,
                      rng: jax.Array | None = None) -> jax.Array:
  """Descriptors float32 [B, D]: the inputs of the run's Dense layers with K outputs, each
  flattened to [B, d_j], concatenated in call order (D = Σ_j d_j), for pixels [B, H, W, C] in
  [0, 1] in inference mode (run.apply). Traceable under jax.jit.

  Raises:
    LptaError: the model calls no Dense layer with K outputs.
  """
  num_classes = len(run.class_names)
  inputs = []

  def record(next_fun, args, kwargs, context):
    output = next_fun(*args, **kwargs)
    if (isinstance(context.module, nn.Dense) and context.method_name == '__call__'
        and output.shape[-1] == num_classes):
      inputs.append(args[0] if args else kwargs['inputs'])
    return output

  with nn.intercept_methods(record):
    run.apply(arrays, pixels, rng)
  if not inputs:
    raise LptaError(f'{run.config.model.name} has no Dense layer with {num_classes} outputs (a '
                    'classifier), so it has no descriptors to probe; probe a model whose '
                    'classifier is a flax.linen.Dense layer.')
  return jnp.concatenate([x.reshape(x.shape[0], -1).astype(jnp.float32) for x in inputs], -1)


def descriptor_function(run: runs.Run):
  """A jitted function (arrays, images uint8 [B, H, W, C], rng) -> descriptors float32 [B, D]
  (`classifier_inputs` of the images scaled to [0, 1])."""
  return jax.jit(lambda arrays, images, rng: classifier_inputs(
      run, arrays, preprocessing.to_unit_range(images), rng))


def descriptors(describe, arrays, images: np.ndarray, batch_size: int, seed: int) -> np.ndarray:
  """float32 [N, D]: `describe` (from `descriptor_function`) of uint8 images [N, H, W, C] in
  padded batches of `batch_size`; batch i uses the rng fold_in(key(seed), i)."""
  key = jax.random.key(seed)
  labels = np.zeros(len(images), np.int32)
  return evaluators.batched(
      lambda batch, index: describe(arrays, batch['image'], jax.random.fold_in(key, index)),
      {'image': images, 'label': labels}, batch_size)


def pixel_features(images: np.ndarray) -> np.ndarray:
  """float32 [N, H·W·C]: uint8 images [N, H, W, C] flattened and divided by 255."""
  return images.reshape(len(images), -1).astype(np.float32) / 255.


def digits_images(image_shape) -> Arrays:
  """All 1797 of scikit-learn's digits as uint8 images of `image_shape` (H, W, C): round(v · 255
  / 16) of the 8×8 values v in 0..16, resized bilinearly to H × W, repeated over C channels;
  'label' int32 [1797] in 0..9."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from sklearn import datasets  # pylint: disable=g-import-not-at-top

  height, width, channels = image_shape
  digits = datasets.load_digits()
  scaled = np.round(digits.images * (255 / _DIGITS_MAX_VALUE)).astype(np.uint8)
  resized = np.stack([
      np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))
      for image in scaled])
  return {'image': np.repeat(resized[..., None], channels, axis=-1),
          'label': digits.target.astype(np.int32)}


def digits_split(image_shape, test_fraction: float, seed: int) -> tuple[Arrays, Arrays]:
  """(probe-train, probe-test) of `digits_images`: a split stratified by class, ⌈test_fraction ·
  1797⌉ examples in probe-test and the rest in probe-train, shuffled with `seed`."""
  from sklearn import model_selection  # pylint: disable=g-import-not-at-top

  digits = digits_images(image_shape)
  train_indices, test_indices = model_selection.train_test_split(
      np.arange(len(digits['label'])), test_size=test_fraction, random_state=seed,
      stratify=digits['label'])
  return ({name: array[train_indices] for name, array in digits.items()},
          {name: array[test_indices] for name, array in digits.items()})


def train_sample(dataset: data.Dataset, max_examples: int, batch_size: int, seed: int) -> Arrays:
  """A random sample of the loaded data set's train split without repeats: the first
  min(max_examples, S · b) examples of its first S = ⌊N / (b · P)⌋ train batches (one epoch),
  b = min(batch_size, ⌊N / P⌋), N train examples, P processes."""
  num_train = dataset.num_train_examples
  size = min(batch_size, num_train // jax.process_count())
  count = min(max_examples, num_train // (size * jax.process_count()) * size)
  parts = list(itertools.islice(dataset.train_batches(size, seed), -(-count // size)))
  return {name: np.concatenate([part[name] for part in parts])[:count]
          for name in ('image', 'label')}


def fit_probe(features: np.ndarray, labels: np.ndarray, *,
              C: float, max_iter: int):  # pylint: disable=invalid-name
  """The probe (module docstring) fitted on features [N, D] and labels [N]: a scikit-learn
  Pipeline of StandardScaler and LogisticRegression.

  Raises:
    LptaError: the labels hold a single class.
  """
  from sklearn import linear_model  # pylint: disable=g-import-not-at-top
  from sklearn import pipeline  # pylint: disable=g-import-not-at-top
  from sklearn import preprocessing as sk_preprocessing  # pylint: disable=g-import-not-at-top

  if len(np.unique(labels)) < 2:
    raise LptaError(f'the {len(labels)} probe-train examples hold a single class; raise '
                    '--eval.max_train_examples.')
  probe = pipeline.Pipeline([
      ('scale', sk_preprocessing.StandardScaler()),
      ('logistic', linear_model.LogisticRegression(C=C, max_iter=max_iter))])
  return probe.fit(features.astype(np.float64), labels)


def confusion_figure(labels: np.ndarray, predictions: np.ndarray, class_names):
  """The confusion matrix (true class by row, predicted by column; counts shown for up to 20
  classes) as a matplotlib figure."""
  from matplotlib import figure as mpl_figure  # pylint: disable=g-import-not-at-top
  from sklearn import metrics  # pylint: disable=g-import-not-at-top

  num_classes = len(class_names)
  matrix = metrics.confusion_matrix(labels, predictions, labels=np.arange(num_classes))
  side = min(3 + .45 * num_classes, 16)
  figure = mpl_figure.Figure(figsize=(side + 1, side))
  axes = figure.subplots()
  display = metrics.ConfusionMatrixDisplay(matrix, display_labels=list(class_names))
  display.plot(ax=axes, include_values=num_classes <= _MAX_ANNOTATED_CLASSES, cmap='Blues',
               xticks_rotation='vertical', colorbar=True)
  axes.set_title('descriptor probe on probe-test')
  return figure


@evaluators.register
class Probe(evaluators.Evaluator):
  """Linear probes on the run's descriptors and on pixels (module docstring)."""
  name = 'probe'

  @property
  def output_name(self) -> str:
    return f'probe_{self.config.dataset}'  # <workdir>/eval/probe_digits/, .../probe_own/

  fields = evaluators.Evaluator.fields + (
      cf.Field('dataset', 'digits', "The probe sets: 'digits' or 'own' (module docstring).",
               cf.one_of(DATASETS, 'a probe data set')),
      cf.Field('test_fraction', 0.5, 'The share of the digits that goes to probe-test, in (0, 1); '
               'each side must keep at least one digit per class.', cf.number(0, 1),
               hint='(e.g. --eval.test_fraction=0.5)'),
      cf.Field('max_train_examples', 5000, 'At most this many probe-train examples.',
               cf.POSITIVE_INTEGER),
      cf.Field('C', 1.0, 'The inverse L2 regularisation strength of the probe (> 0).',
               cf.Check('must be a positive finite number',
                        lambda c: cf.POSITIVE_NUMBER.accepts(c) and math.isfinite(c)),
               hint='(e.g. --eval.C=1.0)'),
      cf.Field('max_iter', 1000, 'L-BFGS iterations of each probe fit.', cf.POSITIVE_INTEGER),
  )

  def validate(self) -> None:
    super().validate()
    fraction = self.config.test_fraction
    if not (DIGITS_CLASSES <= math.ceil(fraction * DIGITS_EXAMPLES)
            <= DIGITS_EXAMPLES - DIGITS_CLASSES):
      raise ConfigError(f'--eval.test_fraction={fraction!r} must be a number in (0, 1) that '
                        'leaves each class on both sides, e.g. --eval.test_fraction=0.5.')

  def evaluate(self, run: runs.Run, output: evaluators.Output) -> dict[str, float]:
    config = self.config
    train, test, class_names = self.probe_sets(run)
    describe = descriptor_function(run)
    train_descriptors, test_descriptors = (
        descriptors(describe, run.arrays, images, config.batch_size, config.seed)
        for images in (train['image'], test['image']))
    probe = fit_probe(train_descriptors, train['label'], C=config.C, max_iter=config.max_iter)
    predictions = probe.predict(test_descriptors)
    pixel_probe = fit_probe(pixel_features(train['image']), train['label'], C=config.C,
                            max_iter=config.max_iter)
    pixel_predictions = pixel_probe.predict(pixel_features(test['image']))
    accuracy = float(np.mean(predictions == test['label']))
    pixel_accuracy = float(np.mean(pixel_predictions == test['label']))
    output.write_csv('probe.csv', {'features': ['descriptors', 'pixels'],
                                   'accuracy': [accuracy, pixel_accuracy]})
    output.save_figure(confusion_figure(test['label'], predictions, class_names),
                       'confusion.png')
    return {'probe_accuracy': accuracy, 'pixel_probe_accuracy': pixel_accuracy,
            'descriptor_size': train_descriptors.shape[1],
            'train_examples': len(train['label']), 'test_examples': len(test['label'])}

  def probe_sets(self, run: runs.Run) -> tuple[Arrays, Arrays, tuple[str, ...]]:
    """(probe-train, probe-test, class names) of `dataset`, each set capped (module docstring)."""
    config = self.config
    if config.dataset == 'digits':
      train, test = digits_split(run.image_shape, config.test_fraction, config.seed)
      class_names = tuple(str(digit) for digit in range(DIGITS_CLASSES))
    else:
      dataset = data.get(run.config.data).load()
      train = train_sample(dataset, config.max_train_examples, config.batch_size, config.seed)
      test = evaluators.examples(run, config, dataset)
      class_names = run.class_names
    train = {name: train[name][:config.max_train_examples] for name in ('image', 'label')}
    test = {name: test[name][:config.max_examples] for name in ('image', 'label')}
    return train, test, class_names
