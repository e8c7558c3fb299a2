"""Runs that load anywhere: lpta.load_run and python -m lpta.predict, without TensorFlow or data."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import flax.linen as nn
import jax
import numpy as np
import pytest

import lpta
from lpta import checkpoints
from lpta import predict
from lpta.errors import CheckpointError
import toy_runs

REPO_ROOT = pathlib.Path(__file__).parent.parent


def _python(*args, cwd=REPO_ROOT, env=None):
  return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                        timeout=300, env=env)


def test_load_run_and_predict_import_neither_tensorflow_nor_tfds(finished_run, tmp_path):
  workdir, _, _ = finished_run
  script = (
      'import sys, numpy as np, lpta\n'
      f'run = lpta.load_run({str(workdir)!r}, step="best")\n'
      'logits, aux = run.predict(np.zeros((3, *run.image_shape), np.uint8))\n'
      'print(logits.shape, run.class_names[1])\n'
      "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', "
      "'tensorflow_datasets', 'tensorboard'}))\n")
  # An empty TFDS folder: nothing of the data set is available.
  env = dict(os.environ, TFDS_DATA_DIR=str(tmp_path / 'empty'))
  result = _python('-c', script, cwd=tmp_path, env=env)
  assert result.returncode == 0, result.stderr
  assert result.stdout.splitlines() == ['(3, 4) class 1', '[]']


def test_load_run_restores_what_training_used(finished_run):
  workdir, state, _ = finished_run
  run = lpta.load_run(workdir)
  assert run.step == 8 and run.checkpoint.endswith('/checkpoints/8')
  assert run.image_shape == (16, 16, 3) and run.class_names == tuple(f'class {i}'
                                                                      for i in range(4))
  for name in ('params', 'batch_stats'):
    leaves = zip(jax.tree.leaves(run.variables[name]), jax.tree.leaves(getattr(state, name)))
    assert all(np.array_equal(a, b) for a, b in leaves)
  from lpta import data  # pylint: disable=g-import-not-at-top
  statistics = data.get(run.config.data).load().statistics
  np.testing.assert_array_equal(run.normalisation.mean, statistics.mean)
  np.testing.assert_array_equal(run.normalisation.std, statistics.std)
  assert run.normalisation.zca_matrix is None
  with pytest.raises(ValueError, match=r'images of shape \(8, 8, 3\) .* takes \(16, 16, 3\)'):
    run.predict(np.zeros((1, 8, 8, 3), np.uint8))


def test_the_version_that_wrote_a_run_is_in_its_checkpoints_and_config_json(finished_run,
                                                                            tmp_path):
  workdir, _, _ = finished_run
  commit = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=pathlib.Path(lpta.__file__).parent,
                          capture_output=True, text=True, check=True).stdout.strip()
  run = lpta.load_run(workdir)
  assert run.version['lpta'] == lpta.__version__
  assert run.version['git_commit'].removesuffix('-dirty') == commit
  saved = json.loads((workdir / 'config.json').read_text())
  assert saved['lpta_version'] == run.version
  assert run.description().endswith(f'with lpta {lpta.__version__} '
                                    f'(commit {run.version["git_commit"]})')
  # A checkpoint written before lpta recorded its version still loads, and says so.
  shutil.copytree(workdir, tmp_path / 'old')
  shutil.rmtree(tmp_path / 'old' / 'checkpoints' / '8' / 'version')
  old = lpta.load_run(tmp_path / 'old')
  assert old.version is None and old.description().endswith('by lpta before 0.3.0')


def test_load_run_of_a_workdir_without_checkpoints_says_how_to_make_one(tmp_path):
  with pytest.raises(CheckpointError, match='holds no checkpoint; train a run there first'):
    lpta.load_run(tmp_path)


def test_a_step_that_is_neither_latest_best_nor_a_number_is_a_checkpoint_error(finished_run):
  workdir, _, _ = finished_run
  for step in ('foo', 'Latest', 2.5, None, True):
    with pytest.raises(CheckpointError) as raised:
      lpta.load_run(workdir, step)
    assert str(raised.value) == (f"step={step!r} names no checkpoint; use 'latest', 'best' or a "
                                 'step number such as 1000.')
  assert lpta.load_run(workdir, '8').step == lpta.load_run(workdir, np.int64(8)).step == 8


class _TinyNetwork(nn.Module):
  """A 3×3 convolution, a global mean and 3 logits; aux: the convolution's map [B, h, w]."""

  @nn.compact
  def __call__(self, x, train=False):
    features = nn.relu(nn.Conv(4, (3, 3))(x))
    return nn.Dense(3)(features.mean(axis=(1, 2))), {'map': features[..., 0]}


def _tiny_run(tmp_path):
  return toy_runs.toy_run(_TinyNetwork(), (8, 8, 3), 3, tmp_path, maps='map')


def test_predict_takes_uint8_or_floats_in_the_unit_range_alike(tmp_path):
  run = _tiny_run(tmp_path)
  images = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
  logits, aux = run.predict(images)
  # Equal up to rounding: the jitted division by 255 of uint8 pixels and numpy's differ in the
  # last bit of a few pixels.
  for floats in (images.astype(np.float32) / np.float32(255), images / 255.):
    float_logits, float_aux = run.predict(floats)
    np.testing.assert_allclose(float_logits, logits, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(float_aux['map'], aux['map'], rtol=1e-6, atol=1e-7)
  with pytest.raises(ValueError) as raised:
    run.predict(images.astype(np.float32))  # 0-255 as floats: the silent mistake of before
  assert str(raised.value) == ('float32 images with values from 0 to 255 given; floating-point '
                               'images must be in [0, 1] (divide 0-255 pixels by 255, or pass '
                               'them as uint8).')
  with pytest.raises(ValueError, match=r'^images of dtype int32 given; a run takes uint8 images '
                     r'\(0 to 255\) or floating-point ones with values in \[0, 1\]\.$'):
    run.predict(images.astype(np.int32))
  with pytest.raises(ValueError, match=r'^images of shape \(8, 8, 3\) given; a run takes a batch '
                     r'\[N, H, W, C\] of images \(8, 8, 3\) \(one image: image\[None\]\)\.$'):
    run.predict(images[0])
  below = np.full((1, 8, 8, 3), .25)
  below[0, 0, 0, 0] = -.5
  with pytest.raises(ValueError, match=r'^float64 images with values from -0\.5 to 0\.25 given'):
    run.predict(below)
  with pytest.raises(ValueError, match=r'^batch_size=0 must be a positive integer\.$'):
    run.predict(images, batch_size=0)


def test_predict_batches_any_count_through_one_compiled_shape(tmp_path):
  run = _tiny_run(tmp_path)
  images = np.random.default_rng(1).integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
  one_by_one = [run.predict(image[None], batch_size=4) for image in images]
  expected_logits = np.concatenate([logits for logits, _ in one_by_one])
  expected_maps = np.concatenate([aux['map'] for _, aux in one_by_one])
  assert expected_logits.shape == (10, 3) and expected_maps.shape == (10, 8, 8)
  for count in (3, 10, 1, 0):
    logits, aux = run.predict(images[:count], batch_size=4)
    assert logits.shape == (count, 3) and aux['map'].shape == (count, 8, 8)
    np.testing.assert_array_equal(logits, expected_logits[:count])
    np.testing.assert_array_equal(aux['map'], expected_maps[:count])
  assert run._jitted_predict._cache_size() == 1  # pylint: disable=protected-access
  # The default batch compiles once more, for any count.
  run.predict(images[:5])
  run.predict(np.concatenate([images] * 70))
  assert run._jitted_predict._cache_size() == 2  # pylint: disable=protected-access


def test_images_of_another_size_and_mode_are_resized_and_converted_with_a_note(tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  grey = np.tile(np.arange(24, dtype=np.uint8)[None, :] * 10, (20, 1))  # 20 rows, 24 columns
  Image.fromarray(grey, mode='L').save(tmp_path / 'grey.png')
  array, note = predict.read_image(str(tmp_path / 'grey.png'), (16, 16, 3))
  assert array.shape == (16, 16, 3) and array.dtype == np.uint8
  # 24×20 · 16/20 = 19.2×16, then the central 16 columns.
  assert note == ('converted from L to RGB; resized from 24×20 to 19×16 and centre-cropped to '
                  '16×16')
  assert np.all(array[..., 0] == array[..., 2])  # grey stays grey
  assert np.all(np.diff(array[0, :, 0].astype(int)) >= 0)  # the ramp survives the resize
  same, note = predict.read_image(str(tmp_path / 'grey.png'), (20, 24, 1))
  np.testing.assert_array_equal(same[..., 0], grey)
  assert note is None


def test_top_classes_are_the_most_probable_in_order():
  logits = np.log(np.array([.1, .4, .05, .3, .15]))
  names = ('a', 'b', 'c', 'd', 'e')
  top = predict.top_classes(logits, names, k=3)
  assert [name for name, _ in top] == ['b', 'd', 'e']
  np.testing.assert_allclose([p for _, p in top], [.4, .3, .15], rtol=1e-6)


def test_predict_command_prints_five_classes_and_writes_the_attention_figure(finished_run,
                                                                             tmp_path):
  workdir, _, _ = finished_run
  from PIL import Image  # pylint: disable=g-import-not-at-top
  image = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
  Image.fromarray(image).save(tmp_path / 'photo.png')
  env = dict(os.environ, TFDS_DATA_DIR=str(tmp_path / 'empty'))
  result = _python('-m', 'lpta.predict', f'--workdir={workdir}',
                   f'--output_dir={tmp_path / "out"}', str(tmp_path / 'photo.png'), env=env)
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  version = checkpoints.lpta_version()
  assert lines[0] == (f'attention_vgg from {workdir}/checkpoints/8 (step 8), trained on synthetic '
                      f'with lpta {version["lpta"]} (commit {version["git_commit"]}); images '
                      '(16, 16, 3).')
  header = lines.index(f'{tmp_path / "photo.png"}: (note: resized from 40×30 to 21×16 and '
                       'centre-cropped to 16×16)')
  ranked = [line.split() for line in lines[header + 1:header + 5]]  # 4 classes in this run
  assert [row[0] for row in ranked] == ['1.', '2.', '3.', '4.']
  probabilities = [float(row[-1]) for row in ranked]
  assert probabilities == sorted(probabilities, reverse=True)
  assert sum(probabilities) == pytest.approx(1, abs=5e-4)
  assert {' '.join(row[1:-1]) for row in ranked} == {f'class {i}' for i in range(4)}
  figure = Image.open(tmp_path / 'out' / 'photo_attention.png')
  assert figure.size == (4 * 96, 96)  # L1, L2, L3, original; 16 px tiles enlarged to 96


def test_predict_command_errors_are_one_line(finished_run, tmp_path):
  workdir, _, _ = finished_run
  missing = _python('-m', 'lpta.predict', f'--workdir={workdir}', str(tmp_path / 'nope.png'))
  assert missing.returncode == 1
  assert missing.stderr.strip().splitlines()[-1].startswith('error: cannot read the image ')
  no_run = _python('-m', 'lpta.predict', f'--workdir={tmp_path}', str(tmp_path / 'nope.png'))
  assert no_run.stderr.strip().splitlines()[-1] == (
      f'error: {tmp_path} holds no checkpoint; train a run there first (python main.py '
      f'--config=<config> --workdir={tmp_path}).')


def test_predict_with_maps_draws_that_map_beside_the_image(finished_run, tmp_path):
  workdir, _, _ = finished_run
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from lpta import maps, summaries  # pylint: disable=g-import-not-at-top
  run = lpta.load_run(workdir)
  image = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
  Image.fromarray(image).save(tmp_path / 'photo.png')
  written = predict.predict_files(run, [str(tmp_path / 'photo.png')], tmp_path / 'out',
                                  'gradcam')
  assert written == [str(tmp_path / 'out' / 'photo_gradcam.png')]
  logits, _ = run.predict(image[None])
  pixels = jax.numpy.asarray(image[None], jax.numpy.float32) / 255.  # as predict_files does
  gradcam = maps.map_function(run, 'gradcam')(run.arrays, pixels, logits.argmax(-1),
                                              jax.random.key(0))
  expected = summaries.overlay_grid(image[None], [np.asarray(gradcam)])
  assert expected.shape == (96, 2 * 96, 3)  # the map's overlay, then the original
  figure = np.asarray(Image.open(written[0]))
  np.testing.assert_array_equal(figure, np.round(expected * 255).astype(np.uint8))
