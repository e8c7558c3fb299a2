"""Runs that load anywhere: lpta.load_run and python -m lpta.predict, without TensorFlow or data."""

import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

import lpta
from lpta import predict
from lpta.errors import CheckpointError

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


def test_load_run_of_a_workdir_without_checkpoints_says_how_to_make_one(tmp_path):
  with pytest.raises(CheckpointError, match='holds no checkpoint; train a run there first'):
    lpta.load_run(tmp_path)


def test_images_of_another_size_and_mode_are_resized_and_converted_with_a_note(tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  grey = np.tile(np.arange(24, dtype=np.uint8)[None, :] * 10, (20, 1))  # 20 rows, 24 columns
  Image.fromarray(grey, mode='L').save(tmp_path / 'grey.png')
  array, note = predict.read_image(str(tmp_path / 'grey.png'), (16, 16, 3))
  assert array.shape == (16, 16, 3) and array.dtype == np.uint8
  assert note == 'converted from L to RGB; resized from 24×20 to 16×16'
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
  header = lines.index(f'{tmp_path / "photo.png"}: (note: resized from 40×30 to 16×16)')
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
