"""lpta.study: arms × seeds through main.py, mean ± sd from the runs' own metrics, resume, and the
verdict rule."""

import json
import math
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from lpta import study
from lpta.errors import ConfigError

TESTS_DIR = pathlib.Path(__file__).parent
REPO_ROOT = TESTS_DIR.parent
# test_train's tiny VGG on 16×16 synthetic images: 2 epochs of 4 steps, no figure.
TINY_CONFIG = f"""
import sys
sys.path.insert(0, {str(TESTS_DIR)!r})
from test_train import tiny_config


def get_config():
  return tiny_config(num_attention_images=0)
"""


def _study_file(tmp_path, arms='', hyper='', extra=''):
  (tmp_path / 'tiny.py').write_text(TINY_CONFIG)
  arms = arms or (f"{{'base': {{'config': {str(tmp_path / 'tiny.py')!r}}},\n"
                  f"        'slow': {{'config': {str(tmp_path / 'tiny.py')!r}, "
                  "'config.optimizer.learning_rate': 0.005}}")
  hyper = hyper or "h.product([h.sweep('arm', list(ARMS)), h.sweep('config.seed', [0, 1])])"
  path = tmp_path / 'tiny_study.py'
  path.write_text(f'ARMS = {arms}\n{extra}\n\ndef get_hyper(h):\n  return {hyper}\n')
  return path


def _study(path, workdir, **popen):
  return subprocess.Popen([sys.executable, '-m', 'lpta.study', f'--config={path}',
                           f'--workdir={workdir}'], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, **popen)


def _wait_for(path: pathlib.Path, process, seconds=240):
  deadline = time.time() + seconds
  while not path.is_dir():
    assert process.poll() is None, process.communicate()
    assert time.time() < deadline, f'{path} did not appear'
    time.sleep(0.2)


def _checkpoint_times(workdir: pathlib.Path) -> dict[str, int]:
  return {str(p): p.stat().st_mtime_ns for p in workdir.rglob('checkpoints/*/*') if p.is_file()}


def test_a_study_trains_every_run_resumes_a_killed_one_and_reports_mean_and_sd(tmp_path):
  path, workdir = _study_file(tmp_path), tmp_path / 'study'
  # Killed (with its main.py) once the first run has saved its first-epoch checkpoint.
  first = _study(path, workdir, start_new_session=True)
  _wait_for(workdir / 'base' / 'seed_0' / 'checkpoints' / '4', first)
  os.killpg(first.pid, signal.SIGKILL)
  first.wait()
  assert not (workdir / 'base' / 'seed_0' / study.RUN_RESULT).exists()

  second = _study(path, workdir)
  output, errors = second.communicate(timeout=900)
  assert second.returncode == 0, errors[-3000:]
  assert '[study tiny_study] run 1 of 4: base, seed 0' in output
  assert 'run 4 of 4: slow, seed 1, about ' in output  # an ETA once a run has finished
  log = (workdir / 'base' / 'seed_0' / 'log.txt').read_text()
  assert 'Resuming from the checkpoint at step 4' in log

  table = json.loads((workdir / 'results.json').read_text())
  for arm in ('base', 'slow'):
    finals = []
    for seed in (0, 1):
      recorded = json.loads((workdir / arm / f'seed_{seed}' / 'metrics.json').read_text())
      assert sorted(recorded, key=int) == ['4', '8']
      finals.append(recorded['8']['test_accuracy'])
    summary = table['arms'][arm]['metrics']['test_accuracy']
    assert summary['n'] == 2 and table['arms'][arm]['seeds'] == [0, 1]
    assert summary['mean'] == pytest.approx(np.mean(finals), abs=1e-12)
    assert summary['sd'] == pytest.approx(np.std(finals, ddof=1), abs=1e-12)
    assert f'{summary["mean"]:.4f} ± {summary["sd"]:.4f}' in (workdir / 'results.md').read_text()
  assert set(table['arms']['base']['metrics']) == {'test_accuracy', 'test_loss',
                                                  'test_top5_accuracy'}
  assert (workdir / 'results.png').read_bytes().startswith(b'\x89PNG')

  # Called again, it retrains nothing.
  before = _checkpoint_times(workdir)
  third = _study(path, workdir)
  output, errors = third.communicate(timeout=300)
  assert third.returncode == 0, errors[-3000:]
  assert '] run ' not in output and '| base | 2 |' in output
  assert _checkpoint_times(workdir) == before


@pytest.mark.parametrize('arms, hyper, extra, message', [
    ("{'a': {'configs': 'x.py'}}", '', '', "arm 'a' needs \"config\""),
    ('', "[]", '', 'get_hyper lists no run'),
    ('', "h.sweep('arm', ['base', 'fast'])", '', "names the arm 'fast'; arms: base, slow"),
    ('', "h.product([h.sweep('arm', ['base']), h.sweep('config.seed', [0, 0])])", '',
     "arm 'base' has seed 0 twice"),
    ('', "h.zipit([h.sweep('arm', ['base', 'slow', 'slow']), h.sweep('config.seed', [0, 0, 1])])",
     '', 'different numbers of seeds .base 1, slow 2.'),
    ('', "h.product([h.sweep('arm', ['base']), h.sweep('config.seed', [-1])])", '',
     'config.seed=-1; seeds are integers >= 0'),
    ('', "h.product([h.sweep('arm', ['base']), h.sweep('config.model.nosuch', [1])])", '',
     r'config.model.nosuch is not a field of the config'),
    ('', '', "COMPARISONS = (('base', 'fast', 'test_accuracy'),)", "names the arm 'fast'"),
    ('', '', "METRICS = ('test_loss',)\nCOMPARISONS = (('base', 'slow', 'test_accuracy'),)",
     "judges 'test_accuracy', which METRICS does not list"),
    ('', '', "CHOOSE = {'best': ('test_accuracy', ('base', 'slow'))}", 'never on test'),
    ('', '', "CHOOSE = {'best': ('validation_accuracy', ('base', 'fast'))}",
     r"picks among \['fast'\]"),
    ('', '', "CHOOSE = {'base': ('validation_accuracy', ('base', 'slow'))}", 'already an arm'),
])
def test_a_bad_study_is_refused_in_one_line_before_anything_trains(tmp_path, arms, hyper, extra,
                                                                   message):
  path = _study_file(tmp_path, arms, hyper, extra)
  with pytest.raises(ConfigError, match=message):
    study.load_study(str(path))


def test_the_command_refuses_a_bad_study_in_one_line(tmp_path):
  path = _study_file(tmp_path, hyper='[]')
  process = _study(path, tmp_path / 'study')
  _, errors = process.communicate(timeout=120)
  assert process.returncode == 1
  assert errors.strip().splitlines() == [f'error: {path}: get_hyper lists no run; sweep the arms '
                                         'and at least one seed.']
  assert not (tmp_path / 'study').exists()


def test_the_sweep_primitives_build_the_points_of_a_grid():
  h = study.Hyper()
  assert h.product([h.sweep('arm', ['a', 'b']), h.sweep('config.seed', [0, 1])]) == [
      {'arm': 'a', 'config.seed': 0}, {'arm': 'a', 'config.seed': 1},
      {'arm': 'b', 'config.seed': 0}, {'arm': 'b', 'config.seed': 1}]
  assert h.zipit([h.sweep('arm', ['a', 'b']), h.sweep('config.x', [1, 2])]) == [
      {'arm': 'a', 'config.x': 1}, {'arm': 'b', 'config.x': 2}]
  assert h.product([h.fixed('arm', 'a'), h.sweep('config.seed', [3])]) == [
      {'arm': 'a', 'config.seed': 3}]
  with pytest.raises(ConfigError, match='one length'):
    h.zipit([h.sweep('a', [1]), h.sweep('b', [1, 2])])


def test_the_verdict_rule_is_two_standard_errors_of_the_difference():
  better = study.summarise([0.80, 0.82, 0.84])  # mean .82, sd .02
  assert better['mean'] == pytest.approx(0.82) and better['sd'] == pytest.approx(0.02)
  # SE of the difference with two such arms: sqrt(2 · .02² / 3) = 0.01633; 2 SE = 0.03266.
  for offset, expected in ((0.033, 'holds'), (0.032, 'undecided'), (-0.033, 'does not hold')):
    worse = study.summarise([0.80 - offset, 0.82 - offset, 0.84 - offset])
    assert study.verdict(better, worse) == expected, offset
  assert 2 * math.sqrt(2 * 0.02**2 / 3) == pytest.approx(0.03266, abs=1e-5)
  # A minimum difference raises the margin; fewer than 3 seeds decide nothing.
  far = study.summarise([0.70, 0.72, 0.74])
  assert study.verdict(better, far) == 'holds'
  assert study.verdict(better, far, min_difference=0.15) == 'undecided'
  assert study.verdict(study.summarise([0.9, 0.91]), far) == 'undecided'
  assert study.summarise([0.5]) == {'mean': 0.5, 'sd': 0., 'n': 1}


def test_a_run_takes_its_overrides_as_main_py_flags():
  run = study.Run('a', 'configs/x.py:cnn', (('config.model.channels', (8,)),
                                            ('config.seed', 2), ('config.transfer.method', 'at')))
  assert run.command('runs/s') == [
      'main.py', '--config=configs/x.py:cnn', '--workdir=runs/s/a/seed_2',
      "--config.model.channels=(8,)", '--config.seed=2', '--config.transfer.method=at']


def test_an_override_names_the_same_seeds_run_of_another_arm():
  run = study.Run('glimpse', 'configs/x.py', (
      ('config.init_from.workdir', '{workdir}/trunk/seed_{seed}'),
      ('config.seed', 1)))
  assert run.command('runs/s')[2:] == ['--workdir=runs/s/glimpse/seed_1',
                                       '--config.init_from.workdir=runs/s/trunk/seed_1',
                                       '--config.seed=1']


@pytest.mark.parametrize('task', ['translated', 'cluttered'])
def test_the_fine_grained_studies_train_each_seeds_glimpse_model_on_its_own_trunk(task,
                                                                                 monkeypatch):
  monkeypatch.chdir(REPO_ROOT)
  loaded = study.load_study(f'configs/studies/fine_grained_{task}.py')
  assert loaded.arms == ('trunk', 'glimpse')
  # Every trunk trains before the glimpse model that starts from it.
  assert [(run.arm, run.seed) for run in loaded.runs] == [
      ('trunk', 0), ('trunk', 1), ('trunk', 2), ('glimpse', 0), ('glimpse', 1), ('glimpse', 2)]
  for run in loaded.runs[3:]:
    assert f'--config.init_from.workdir=W/trunk/seed_{run.seed}' in run.command('W')
    assert run.config == f'configs/canvas_fine_grained.py:{task},glimpse'


@pytest.mark.parametrize('name', ['ram_translated', 'ram_cluttered'])
def test_the_shipped_studies_load_with_three_seeds_per_arm(name, monkeypatch):
  monkeypatch.chdir(REPO_ROOT)
  loaded = study.load_study(f'configs/studies/{name}.py')
  assert loaded.arms == ('learned', 'reinforce_0', 'centre', 'random', 'cnn', 'oracle')
  assert len(loaded.runs) == 18
  assert {run.seed for run in loaded.runs} == {0, 1, 2}
  task = name.split('_')[1]
  assert {run.config for run in loaded.runs} == {f'configs/{task}_fashion_mnist_ram.py',
                                                 f'configs/canvas_baseline.py:{task},cnn'}
  assert [c.worse for c in loaded.comparisons] == ['reinforce_0', 'centre', 'random', 'cnn']


def test_a_runs_result_holds_the_evaluators_of_its_last_step(tmp_path):
  folder = tmp_path / 'arm' / 'seed_0'
  (folder / 'eval' / 'robustness').mkdir(parents=True)
  (folder / 'eval' / 'probe_digits').mkdir()
  (folder / 'metrics.json').write_text(json.dumps({'4': {'test_accuracy': 0.5},
                                                   '8': {'test_accuracy': 0.75}}))
  (folder / 'eval' / 'robustness' / 'results.json').write_text(json.dumps(
      {'step': 8, 'results': {'fgsm_accuracy_0.1': 0.25}}))
  # An evaluation of an earlier step (e.g. python -m lpta.evaluate --step=4) is not the run's.
  (folder / 'eval' / 'probe_digits' / 'results.json').write_text(json.dumps(
      {'step': 4, 'results': {'accuracy': 0.9}}))
  run = study.Run('arm', 'configs/x.py', (('config.seed', 0),))
  study._write_run_result(str(folder), run, seconds=12.34)  # pylint: disable=protected-access
  assert study.final_metrics(str(folder)) == {'test_accuracy': 0.75,
                                               'robustness/fgsm_accuracy_0.1': 0.25}
  assert json.loads((folder / study.RUN_RESULT).read_text())['seconds'] == 12.3


def test_a_study_that_shares_runs_reads_the_other_studys_folder_and_writes_its_own_table(
    tmp_path):
  path = _study_file(tmp_path, extra="SHARES_RUNS_WITH = 'tiny_classification'")
  shared = study.load_study(str(path))
  assert shared.default_workdir == os.path.join('runs', 'studies', 'tiny_classification')
  assert shared.results_stem == 'results_tiny_study'
  own = study.load_study(str(_study_file(tmp_path)))
  assert (own.default_workdir, own.results_stem) == (os.path.join('runs', 'studies',
                                                                  'tiny_study'), 'results')
  for run, accuracy in zip(shared.runs, (0.5, 0.6, 0.7, 0.8)):
    folder = pathlib.Path(run.folder(str(tmp_path / 'w')))
    folder.mkdir(parents=True)
    (folder / study.RUN_RESULT).write_text(json.dumps({'metrics': {'test_accuracy': accuracy}}))
  study.write_results(shared, str(tmp_path / 'w'))
  table = json.loads((tmp_path / 'w' / 'results_tiny_study.json').read_text())
  assert table['arms']['slow']['metrics']['test_accuracy']['mean'] == pytest.approx(0.75)
  assert not (tmp_path / 'w' / 'results.json').exists()


def test_a_comparison_may_set_one_arms_metric_against_anothers(tmp_path):
  path = _study_file(tmp_path, extra="COMPARISONS = (('base', 'slow', 'maps/pointing_attention', "
                     "'learned maps beat Grad-CAM', 0., 'maps/pointing_gradcam'),)")
  loaded = study.load_study(str(path))
  # base's attention 0.80, 0.82, 0.84 against slow's Grad-CAM 0.70, 0.72, 0.74 would hold, but
  # the rule needs 3 seeds: with the study's 2, undecided; by hand with a third, holds.
  values = {('base', 0): (0.80, 0.10), ('base', 1): (0.82, 0.99), ('slow', 0): (0.99, 0.70),
            ('slow', 1): (0.99, 0.72)}
  for run in loaded.runs:
    folder = pathlib.Path(run.folder(str(tmp_path / 'w')))
    folder.mkdir(parents=True)
    attention, gradcam = values[(run.arm, run.seed)]
    (folder / study.RUN_RESULT).write_text(json.dumps({'metrics': {
        'maps/pointing_attention': attention, 'maps/pointing_gradcam': gradcam}}))
  table = study.results(loaded, str(tmp_path / 'w'))
  assert table['comparisons'][0]['verdict'] == 'undecided'
  assert table['comparisons'][0]['metrics_compared'] == ('maps/pointing_attention vs '
                                                         'maps/pointing_gradcam')
  assert table['arms']['slow']['metrics']['maps/pointing_gradcam']['mean'] == pytest.approx(0.71)
  better = study.summarise([0.80, 0.82, 0.84])
  assert study.verdict(better, study.summarise([0.70, 0.72, 0.74])) == 'holds'
  assert 'maps/pointing_attention vs maps/pointing_gradcam | undecided' in study.markdown(table)


@pytest.mark.parametrize('name, arms, runs_name', [
    ('ltpa_classification', ('vgg', 'att2', 'att3', 'att3_dp'), 'ltpa_classification'),
    ('ltpa_robustness', ('vgg', 'att3'), 'ltpa_classification'),
    ('ltpa_cross_domain', ('vgg', 'att2', 'att3', 'att3_dp'), 'ltpa_classification'),
    ('ltpa_localisation', ('vgg', 'att2', 'att3'), 'ltpa_localisation'),
])
def test_the_ltpa_studies_judge_metrics_that_their_runs_evaluators_report(name, arms, runs_name,
                                                                          monkeypatch):
  from lpta import evaluators  # pylint: disable=g-import-not-at-top
  monkeypatch.chdir(REPO_ROOT)
  loaded = study.load_study(f'configs/studies/{name}.py')
  assert loaded.arms == arms and loaded.runs_name == runs_name
  assert all(sorted(run.seed for run in loaded.runs if run.arm == arm) == [0, 1, 2]
             for arm in arms)
  configs = {run.arm: study._load_config(*run.config.split(':'))  # pylint: disable=protected-access
             for run in loaded.runs}
  for comparison in loaded.comparisons:
    for arm, metric in ((comparison.better, comparison.metric),
                        (comparison.worse, comparison.worse_metric or comparison.metric)):
      assert metric in loaded.metrics
      if '/' in metric:  # an evaluator's result: that evaluator runs at the end of the arm's run
        scheduled = {evaluators.get_class(evaluator)(config).output_name: every_epochs
                     for evaluator, config, every_epochs in evaluators.scheduled(
                         configs[arm].evals)}
        assert scheduled.get(metric.split('/')[0]) == configs[arm].num_epochs, (arm, metric)


def test_a_chosen_arm_is_the_candidate_with_the_best_validation_mean_whatever_its_test(tmp_path):
  path = _study_file(
      tmp_path, hyper="h.product([h.sweep('arm', list(ARMS)), h.sweep('config.seed', [0, 1, 2])])",
      extra="CHOOSE = {'best': ('validation_accuracy', ('base', 'slow'))}\n"
            "COMPARISONS = (('best', 'base', 'test_accuracy'),)")
  loaded = study.load_study(str(path))
  # slow leads on validation (0.81 against 0.80 on average) and trails on test.
  values = {'base': ((0.80, 0.79, 0.81), (0.90, 0.91, 0.92)),
            'slow': ((0.81, 0.80, 0.82), (0.60, 0.61, 0.62))}
  for run in loaded.runs:
    folder = pathlib.Path(run.folder(str(tmp_path / 'w')))
    folder.mkdir(parents=True)
    validation, test = values[run.arm]
    (folder / study.RUN_RESULT).write_text(json.dumps({'metrics': {
        'validation_accuracy': validation[run.seed], 'test_accuracy': test[run.seed]}}))
  table = study.results(loaded, str(tmp_path / 'w'))
  best = table['arms']['best']
  assert best['chosen'] == 'slow'
  assert best['chosen_by'] == pytest.approx({'base': 0.80, 'slow': 0.81})
  assert best['metrics']['test_accuracy']['mean'] == pytest.approx(0.61)
  # The chosen arm trails base by 0.30 with sd 0.01 each: the claim does not hold.
  assert table['comparisons'][0]['verdict'] == 'does not hold'
  assert 'best is slow (the highest mean validation metric: base 0.8000, slow 0.8100)' in (
      study.markdown(table))


def test_the_attention_transfer_study_chooses_beta_on_validation_from_each_seeds_teacher(
    monkeypatch):
  monkeypatch.chdir(REPO_ROOT)
  loaded = study.load_study('configs/studies/attention_transfer.py')
  assert loaded.arms[0] == 'teacher' and loaded.runs[:3] == tuple(
      run for run in loaded.runs if run.arm == 'teacher')
  assert loaded.choices['at'].metric == 'validation_accuracy'
  assert loaded.choices['at'].candidates == ('at_beta_10', 'at_beta_100', 'at_beta_1000')
  for run in loaded.runs:
    command = run.command('W')
    assert '--config.data.validation_split=3000' in command
    uses_teacher = run.arm not in ('teacher', 'none')
    assert (f'--config.teacher.workdir=W/teacher/seed_{run.seed}' in command) == uses_teacher
  assert {(c.better, c.worse) for c in loaded.comparisons} >= {('at', 'none'), ('at_kd', 'kd')}


# sd 0.01 in every arm (values mean − 0.01, mean, mean + 0.01 over seeds 0, 1, 2), so "better >
# worse" holds when the means differ by more than 2 · sqrt(2 · 0.01² / 3) = 0.0163, by hand.
_SPREAD = {0: -0.01, 1: 0., 2: 0.01}
_MARGIN = 0.0163


@pytest.mark.parametrize('name', ['ltpa_classification', 'ltpa_localisation', 'ltpa_robustness',
                                  'ltpa_cross_domain', 'attention_transfer',
                                  'paper_ltpa_cifar100', 'paper_at_cifar10'])
def test_each_cnn_study_gives_the_verdicts_of_the_rule_for_means_set_by_hand(name, tmp_path,
                                                                             monkeypatch):
  monkeypatch.chdir(REPO_ROOT)
  loaded = study.load_study(f'configs/studies/{name}.py')
  # The last candidate of a choice leads on validation, so the choice's comparisons read it.
  chosen = {arm: choice.candidates[-1] for arm, choice in loaded.choices.items()}
  means = {(arm, 'validation_accuracy'): 0.6 + 0.01 * rank
           for choice in loaded.choices.values() for rank, arm in enumerate(choice.candidates)}
  # Means on a grid of 0.01, set where one is still free so that the comparisons in turn are
  # undecided (ahead by 0.01), hold (ahead by 0.03) and do not hold (behind by 0.03).
  pairs = [((chosen.get(c.better, c.better), c.metric),
            (chosen.get(c.worse, c.worse), c.worse_metric or c.metric)) for c in loaded.comparisons]
  offsets = iter((0.01, 0.03, -0.03) * len(pairs))
  for better, worse in pairs:
    if better not in means and worse not in means:
      means[worse] = 0.5
    if better not in means:
      means[better] = means[worse] + next(offsets)
    elif worse not in means:
      means[worse] = means[better] - next(offsets)
  for run in loaded.runs:
    folder = pathlib.Path(run.folder(str(tmp_path)))
    folder.mkdir(parents=True)
    metrics = {metric: mean + _SPREAD[run.seed] for (arm, metric), mean in means.items()
               if arm == run.arm}
    (folder / study.RUN_RESULT).write_text(json.dumps({'metrics': metrics}))
  table = study.results(loaded, str(tmp_path))
  verdicts = []
  for (better, worse), row in zip(pairs, table['comparisons'], strict=True):
    difference = means[better] - means[worse]
    expected = ('holds' if difference > _MARGIN else
                'does not hold' if difference < -_MARGIN else 'undecided')
    assert row['verdict'] == expected, (row, difference)
    verdicts.append(expected)
  assert len(set(verdicts)) >= min(2, len(verdicts))  # the means decide, not a constant
  for arm, candidate in chosen.items():
    assert table['arms'][arm]['chosen'] == candidate
