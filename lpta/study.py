"""Studies: arms × seeds through the normal train loop, mean ± sd, and verdicts by one stated rule.

  python -m lpta.study --config=configs/studies/ram_translated.py [--workdir=runs/studies/...]

A study file (configs/studies/) defines
  ARMS: {arm name: arm}, an arm being {'config': a config file (with its ':argument' if it takes
    one), and 'config.<field>': value overrides of that config};
  get_hyper(h): the runs, in the sweep form of big_vision and scenic configs: e.g.
    h.product([h.sweep('arm', list(ARMS)), h.sweep('config.seed', [0, 1, 2])]) — every point
    names an arm and may override config fields ('config.<field>'), the seed above all;
  METRICS (optional): the metrics of the table, e.g. ('test_accuracy',), the compared ones among
    them; default: every final test metric the runs report and the compared ones;
  An override's string value may name the study's folders: '{workdir}' and '{seed}' become the
    study's workdir and the run's seed, so that an arm starts from another arm's run of the same
    seed, e.g. 'config.init_from.workdir': '{workdir}/trunk/seed_{seed}' (that arm must come
    first in get_hyper's order, which is the order of training).
  SHARES_RUNS_WITH (optional): the name of another study whose runs this one reads (its default
    workdir is then that study's, runs/studies/<name>): one set of trainings, several tables,
    e.g. the robustness of the networks of a classification study;
  CHOOSE (optional): {name: (validation metric, candidate arms)}: an arm chosen after the runs,
    the candidate with the highest mean of that metric over its seeds (never a test metric),
    e.g. {'at': ('validation_accuracy', ('at_beta_10', 'at_beta_100'))}; comparisons may name it;
  COMPARISONS (optional): the claims to judge, (better arm, worse arm, metric, what the paper
    says[, minimum difference[, the worse arm's metric if another]]), e.g. ('learned',
    'random', 'test_accuracy', 'RAM, Table 2').
A sweep tool launches the same runs on a cluster from get_hyper: each point is
`python main.py --config=<arm's config> --config.<field>=<value> ...`.

Locally `python -m lpta.study` trains every point one after another, each through main.py (so
with checkpoints, automatic resume and best-on-validation) in its own folder,
<workdir>/<arm>/seed_<seed>. A run that finished (it wrote study_run.json) is skipped; one that
was interrupted resumes; so a study longer than a sitting is finished by running the same command
again. Each run's metrics are those of its final evaluation (test split; validation ranks nothing
here), with the results of the evaluators that `config.evals` ran at its last step, named
'<evaluator output>/<result>'. The study writes <workdir>/results.json, results.md (per arm and
metric: mean ± sd over the seeds that finished, and their number; then the verdict of each
comparison) and results.png (per arm, each metric with its spread; for glimpse models, the
distance of each glimpse to the item); results_<study>.* in the folder of a study it shares runs
with. A progress line before each run says which one of how many trains, and the study's ETA.

The rule (`verdict`): arm A beats arm B on a metric when A's mean is ahead of B's by more than
two standard errors of the difference, SE = sqrt(sd_A²/n_A + sd_B²/n_B), sample standard
deviations over n ≥ 3 seeds each (and by at least the comparison's `min_difference`, if it
gives one). If B's mean is ahead of A's by as much, the claim does not hold; otherwise it is
undecided at this scale. Fewer than 3 seeds on either side: undecided (no claim from one seed).
"""

import dataclasses
import glob
import importlib.util
import itertools
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lpta import command_line
from lpta.errors import ConfigError

MIN_SEEDS = 3  # per arm, for a verdict
RUN_RESULT = 'study_run.json'  # in a run's folder, written when its training finished


class Hyper:
  """The sweep primitives of big_vision and scenic configs' get_hyper(h): each returns a list of
  points, a point being {key: value}."""

  @staticmethod
  def sweep(key: str, values: Sequence[Any]) -> list[dict[str, Any]]:
    return [{key: value} for value in values]

  @staticmethod
  def fixed(key: str, value: Any) -> list[dict[str, Any]]:
    return [{key: value}]

  @staticmethod
  def product(sweeps: Sequence[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [dict(item for point in points for item in point.items())
            for points in itertools.product(*sweeps)]

  @staticmethod
  def zipit(sweeps: Sequence[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    if len({len(points) for points in sweeps}) > 1:
      raise ConfigError('h.zipit needs sweeps of one length, got '
                        f'{", ".join(str(len(points)) for points in sweeps)}.')
    return [dict(item for point in points for item in point.items())
            for points in zip(*sweeps)]


@dataclasses.dataclass(frozen=True)
class Run:
  """One point of a study: an arm, its config file and every override (the seed included)."""
  arm: str
  config: str
  overrides: tuple[tuple[str, Any], ...]

  @property
  def seed(self) -> int:
    return dict(self.overrides).get('config.seed', 0)

  def folder(self, workdir: str) -> str:
    return os.path.join(workdir, self.arm, f'seed_{self.seed}')

  def command(self, workdir: str) -> list[str]:
    """main.py's command line for this run ('{workdir}' and '{seed}' in string overrides
    filled in)."""
    fill = lambda value: (value.replace('{workdir}', workdir).replace('{seed}', str(self.seed))
                          if isinstance(value, str) else value)
    return ['main.py', f'--config={self.config}', f'--workdir={self.folder(workdir)}',
            *(f'--{key}={_flag_value(fill(value))}' for key, value in self.overrides)]


@dataclasses.dataclass(frozen=True)
class Comparison:
  """The claim "arm `better` beats arm `worse` on `metric`" (on `worse_metric` for the worse
  arm when given: e.g. one network's learned maps against another's Grad-CAM)."""
  better: str
  worse: str
  metric: str
  claim: str = ''
  min_difference: float = 0.
  worse_metric: str | None = None

  @property
  def metrics_compared(self) -> str:
    return self.metric if self.worse_metric is None else f'{self.metric} vs {self.worse_metric}'


@dataclasses.dataclass(frozen=True)
class Choice:
  """An arm chosen after the runs: the candidate with the highest mean `metric` (a validation
  metric) over its seeds, e.g. the β of attention transfer."""
  metric: str
  candidates: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Study:
  name: str
  runs: tuple[Run, ...]
  metrics: tuple[str, ...] | None
  comparisons: tuple[Comparison, ...]
  runs_name: str  # the study whose folder holds the runs: its own name or SHARES_RUNS_WITH
  choices: Mapping[str, Choice] = dataclasses.field(default_factory=dict)

  @property
  def default_workdir(self) -> str:
    return os.path.join('runs', 'studies', self.runs_name)

  @property
  def results_stem(self) -> str:
    """'results' (results.json, .md, .png), or 'results_<name>' in another study's folder."""
    return 'results' if self.name == self.runs_name else f'results_{self.name}'

  @property
  def arms(self) -> tuple[str, ...]:
    return tuple(dict.fromkeys(run.arm for run in self.runs))


def _flag_value(value: Any) -> str:
  """A value as ml_collections' --config.<field>= flags parse it."""
  if isinstance(value, (tuple, list)):
    return '(' + ', '.join(map(repr, value)) + (',)' if len(value) == 1 else ')')
  return str(value)


def load_study(path: str) -> Study:
  """The study of a study file, checked: every arm's config loads and takes its overrides, every
  point names an arm, seeds are integers, and each arm has as many distinct seeds as any other.

  Raises:
    ConfigError: one line saying what is wrong, before anything trains.
  """
  if not os.path.isfile(path):
    raise ConfigError(f'--config={path}: no such study file (looked for from {os.getcwd()}); '
                      'studies live in configs/studies/.')
  module = _import(path)
  arms = getattr(module, 'ARMS', None)
  if not isinstance(arms, Mapping) or not arms:
    raise ConfigError(f'{path} defines no ARMS ({{arm name: {{"config": ..., overrides}}}}).')
  if not callable(getattr(module, 'get_hyper', None)):
    raise ConfigError(f'{path} defines no get_hyper(h) listing the runs (e.g. h.product(['
                      "h.sweep('arm', list(ARMS)), h.sweep('config.seed', [0, 1, 2])])).")
  points = module.get_hyper(Hyper())
  if not points:
    raise ConfigError(f'{path}: get_hyper lists no run; sweep the arms and at least one seed.')
  runs = tuple(_run(path, arms, point) for point in points)
  seeds = {arm: [run.seed for run in runs if run.arm == arm] for arm in dict.fromkeys(
      run.arm for run in runs)}
  for arm, arm_seeds in seeds.items():
    if len(set(arm_seeds)) != len(arm_seeds):
      raise ConfigError(f'{path}: arm {arm!r} has seed {_repeated(arm_seeds)} twice; each run of '
                        'an arm needs its own seed.')
  if len({len(arm_seeds) for arm_seeds in seeds.values()}) > 1:
    counts = ', '.join(f'{arm} {len(arm_seeds)}' for arm, arm_seeds in seeds.items())
    raise ConfigError(f'{path}: the arms have different numbers of seeds ({counts}); every arm '
                      'needs the same seeds.')
  for run in {run.config: run for run in runs}.values():
    _check_overrides(path, run)
  metrics = getattr(module, 'METRICS', None)
  choices = _choices(path, getattr(module, 'CHOOSE', {}), seeds)
  comparisons = tuple(Comparison(*entry) for entry in getattr(module, 'COMPARISONS', ()))
  for comparison in comparisons:
    for arm in (comparison.better, comparison.worse):
      if arm not in seeds and arm not in choices:
        raise ConfigError(f'{path}: COMPARISONS names the arm {arm!r}, which no run has; arms: '
                          f'{", ".join([*seeds, *choices])}.')
    for metric in (comparison.metric, comparison.worse_metric):
      if metrics and metric is not None and metric not in metrics:
        raise ConfigError(f'{path}: COMPARISONS judges {metric!r}, which METRICS does not '
                          'list; add it there.')
  name = os.path.splitext(os.path.basename(path))[0]
  return Study(name, runs, tuple(metrics) if metrics else None, comparisons,
               getattr(module, 'SHARES_RUNS_WITH', name), choices)


def _choices(path: str, choose: Mapping[str, Any], seeds: Mapping[str, Any]) -> dict[str, Choice]:
  """CHOOSE checked: each choice picks among arms, by a validation metric."""
  choices = {}
  for name, entry in choose.items():
    metric, candidates = entry
    if name in seeds:
      raise ConfigError(f'{path}: CHOOSE names {name!r}, which is already an arm.')
    unknown = [arm for arm in candidates if arm not in seeds]
    if unknown or not candidates:
      raise ConfigError(f'{path}: CHOOSE {name!r} picks among {unknown or "no arms"}; arms: '
                        f'{", ".join(seeds)}.')
    if not metric.startswith('validation_'):
      raise ConfigError(f'{path}: CHOOSE {name!r} picks by {metric!r}; choose on a validation '
                        'metric (validation_...), never on test.')
    choices[name] = Choice(metric, tuple(candidates))
  return choices


def _repeated(values):
  return next(value for value in values if values.count(value) > 1)


def _import(path: str):
  spec = importlib.util.spec_from_file_location(f'lpta_study_{abs(hash(path))}', path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except Exception as error:  # pylint: disable=broad-except
    raise ConfigError(f'{path}: {type(error).__name__}: '
                      f'{command_line.first_line(error)}') from error
  return module


def _run(path: str, arms: Mapping[str, Mapping[str, Any]], point: Mapping[str, Any]) -> Run:
  arm = point.get('arm')
  if arm not in arms:
    raise ConfigError(f'{path}: a point of get_hyper names the arm {arm!r}; arms: '
                      f'{", ".join(arms)}.')
  fields = {**arms[arm], **{key: value for key, value in point.items() if key != 'arm'}}
  unknown = [key for key in fields if key != 'config' and not key.startswith('config.')]
  if unknown or 'config' not in fields:
    raise ConfigError(f'{path}: arm {arm!r} needs "config" (a config file) and overrides named '
                      f'"config.<field>"; got {", ".join(map(repr, unknown or ["no config"]))}.')
  seed = fields.get('config.seed', 0)
  if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
    raise ConfigError(f'{path}: arm {arm!r} has config.seed={seed!r}; seeds are integers >= 0.')
  overrides = tuple(sorted((key, value) for key, value in fields.items() if key != 'config'))
  return Run(arm, fields['config'], overrides)


def _check_overrides(path: str, run: Run) -> None:
  """ConfigError unless the run's config file loads and takes every override of the arms that
  use it."""
  file, _, argument = run.config.partition(':')
  if not os.path.isfile(file):
    raise ConfigError(f'{path}: arm {run.arm!r} uses {file}, which does not exist.')
  try:
    config = _load_config(file, argument)
    for key, value in run.overrides:
      _set(config, key[len('config.'):], value)
  except ConfigError:
    raise
  except Exception as error:  # pylint: disable=broad-except
    raise ConfigError(f'{path}: arm {run.arm!r} ({run.config}): '
                      f'{type(error).__name__}: {command_line.first_line(error)}') from error


def _load_config(file: str, argument: str):
  module = _import(file)
  return module.get_config(argument) if argument else module.get_config()


def _set(config, field: str, value: Any) -> None:
  """config.<field> = value; ConfigError naming the field if the config has no such field."""
  *parents, name = field.split('.')
  node = config
  for parent in parents:
    node = node[parent] if parent in node else None
    if node is None:
      break
  if node is None or name not in node:
    raise ConfigError(f'config.{field} is not a field of the config.')
  node[name] = value


def summarise(values: Sequence[float]) -> dict[str, float]:
  """{'mean', 'sd' (sample standard deviation, n − 1; 0 for one value), 'n'}."""
  n = len(values)
  mean = sum(values) / n
  sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.
  return {'mean': mean, 'sd': sd, 'n': n}


def verdict(better: Mapping[str, float], worse: Mapping[str, float],
            min_difference: float = 0.) -> str:
  """'holds', 'does not hold' or 'undecided' for the claim "better > worse" (summaries), by the
  rule of the module docstring."""
  if better['n'] < MIN_SEEDS or worse['n'] < MIN_SEEDS:
    return 'undecided'
  error = math.sqrt(better['sd'] ** 2 / better['n'] + worse['sd'] ** 2 / worse['n'])
  margin = max(2 * error, min_difference)
  difference = better['mean'] - worse['mean']
  if difference > margin:
    return 'holds'
  if -difference > margin:
    return 'does not hold'
  return 'undecided'


def final_metrics(folder: str) -> dict[str, float]:
  """The metrics of the run's final evaluation (its latest checkpoint)."""
  with open(os.path.join(folder, RUN_RESULT)) as file:
    return json.load(file)['metrics']


def evaluator_metrics(folder: str, step: int) -> dict[str, float]:
  """{'<evaluator output>/<result>': value} of the evaluators that config.evals ran at `step`
  (their <folder>/eval/<output>/results.json), e.g. 'fgsm/accuracy_eps_0.1'."""
  found = {}
  for path in sorted(glob.glob(os.path.join(folder, 'eval', '*', 'results.json'))):
    with open(path) as file:
      record = json.load(file)
    if record.get('step') == step:
      output = os.path.basename(os.path.dirname(path))
      found.update({f'{output}/{key}': value for key, value in record['results'].items()})
  return found


def _write_run_result(folder: str, run: Run, seconds: float) -> None:
  """study_run.json: the run, its training time and the metrics of its final evaluation (the
  last entry of the metrics.json that the train loop writes), with those of the evaluators that
  ran at the same step."""
  with open(os.path.join(folder, 'metrics.json')) as file:
    evaluations = json.load(file)
  step = max(evaluations, key=int)
  metrics = {**evaluations[step], **evaluator_metrics(folder, int(step))}
  result = {'arm': run.arm, 'config': run.config, 'overrides': dict(run.overrides),
            'step': int(step), 'seconds': round(seconds, 1), 'metrics': metrics}
  with open(os.path.join(folder, RUN_RESULT), 'w') as file:
    json.dump(result, file, indent=1)


def train_runs(study: Study, workdir: str, log: Callable[[str], None] = print) -> None:
  """Trains the runs not finished yet, one after another; a progress line before each."""
  pending = [run for run in study.runs
             if not os.path.exists(os.path.join(run.folder(workdir), RUN_RESULT))]
  done = len(study.runs) - len(pending)
  durations = []
  for index, run in enumerate(pending):
    eta = (f', about {_duration(sum(durations) / len(durations) * (len(pending) - index))} to '
           'go' if durations else '')
    log(f'[study {study.name}] run {done + index + 1} of {len(study.runs)}: {run.arm}, seed '
        f'{run.seed}{eta} ({len(pending) - index} to train, {done} finished before).')
    folder = run.folder(workdir)
    os.makedirs(folder, exist_ok=True)
    start = time.time()
    returncode = _train(run.command(workdir), os.path.join(folder, 'log.txt'), log,
                        prefix=f'  {run.arm}, seed {run.seed}: ')
    if returncode:
      raise ConfigError(f'the run {run.arm}, seed {run.seed} failed (exit {returncode}): '
                        f'{_last_line(os.path.join(folder, "log.txt"))} (its log: '
                        f'{folder}/log.txt); fix it and run the study again to go on.')
    durations.append(time.time() - start)
    _write_run_result(folder, run, durations[-1])


def _train(command: Sequence[str], log_path: str, log: Callable[[str], None],
           prefix: str) -> int:
  """Runs main.py (from the repository root, this file's parent folder) with its output appended
  to `log_path`, passing on its progress lines (steps/s, percentage, ETA); its exit status."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  with open(log_path, 'a') as output:
    process = subprocess.Popen([sys.executable, *command], cwd=root, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:
      output.write(line)
      if 'ETA:' in line:
        log(prefix + line.split('notes: ', 1)[-1].strip())
    return process.wait()


def _last_line(path: str) -> str:
  with open(path) as file:
    lines = [line.strip() for line in file if line.strip()]
  return lines[-1] if lines else '(no output)'


def _duration(seconds: float) -> str:
  minutes = round(seconds / 60)
  return f'{minutes // 60} h {minutes % 60:02d} min' if minutes >= 60 else f'{minutes} min'


def results(study: Study, workdir: str) -> dict[str, Any]:
  """{'arms': {arm: {'seeds': [...], 'runs': [{seed, metrics}], 'metrics': {metric: summary}}},
  'comparisons': [...]} over the finished runs."""
  arms = {}
  for arm in study.arms:
    finished = [run for run in study.runs if run.arm == arm
                and os.path.exists(os.path.join(run.folder(workdir), RUN_RESULT))]
    per_run = [{'seed': run.seed, 'metrics': final_metrics(run.folder(workdir))}
               for run in finished]
    names = _table_metrics(study, arm, per_run)
    arms[arm] = {
        'seeds': [entry['seed'] for entry in per_run], 'runs': per_run,
        'metrics': {name: summarise([entry['metrics'][name] for entry in per_run])
                    for name in names if per_run and all(name in entry['metrics']
                                                         for entry in per_run)}}
  for name, choice in study.choices.items():
    arms[name] = chosen_arm(arms, choice)
  comparisons = []
  for comparison in study.comparisons:
    better = arms[comparison.better]['metrics'].get(comparison.metric)
    worse = arms[comparison.worse]['metrics'].get(comparison.worse_metric or comparison.metric)
    comparisons.append({
        **dataclasses.asdict(comparison), 'metrics_compared': comparison.metrics_compared,
        'verdict': verdict(better, worse, comparison.min_difference) if better and worse
                   else 'undecided'})
  return {'study': study.name, 'arms': arms, 'comparisons': comparisons}


def _table_metrics(study: Study, arm: str, per_run: Sequence[Mapping[str, Any]]) -> list[str]:
  """The metrics of `arm`'s row: METRICS, or every final test metric of its runs and the
  compared ones; then the validation metric of any choice it is a candidate of."""
  compared = {name for comparison in study.comparisons
              for name in (comparison.metric, comparison.worse_metric) if name}
  names = list(study.metrics or sorted(
      {name for entry in per_run for name in entry['metrics'] if name.startswith('test_')}
      | compared))
  chosen_by = {choice.metric for choice in study.choices.values() if arm in choice.candidates}
  return names + sorted(chosen_by - set(names))


def chosen_arm(arms: Mapping[str, Any], choice: Choice) -> dict[str, Any]:
  """The entry of the candidate with the highest mean of the choice's metric among those
  with MIN_SEEDS finished runs (the first on ties), with 'chosen' (its name) and 'chosen_by'
  ({candidate: mean}); an empty entry while no candidate has them."""
  means = {arm: arms[arm]['metrics'][choice.metric]['mean'] for arm in choice.candidates
           if arms[arm]['metrics'].get(choice.metric, {}).get('n', 0) >= MIN_SEEDS}
  if not means:
    return {'seeds': [], 'runs': [], 'metrics': {}, 'chosen': None, 'chosen_by': {}}
  best = max(means, key=means.get)
  return {**arms[best], 'chosen': best, 'chosen_by': means}


def markdown(table: Mapping[str, Any]) -> str:
  """results.md: one row per arm, one column per metric (mean ± sd, n), then the verdicts."""
  names = sorted({name for arm in table['arms'].values() for name in arm['metrics']})
  lines = [f'# Study {table["study"]}', '',
           '| arm | seeds | ' + ' | '.join(names) + ' |', '|---|---|' + '---|' * len(names)]
  for arm, entry in table['arms'].items():
    cells = [f'{s["mean"]:.4f} ± {s["sd"]:.4f}' if (s := entry['metrics'].get(name)) else '—'
             for name in names]
    lines.append(f'| {arm} | {len(entry["seeds"])} | ' + ' | '.join(cells) + ' |')
  for arm, entry in table['arms'].items():
    if 'chosen' in entry:
      by = ', '.join(f'{candidate} {mean:.4f}' for candidate, mean in entry['chosen_by'].items())
      lines += ['', f'{arm} is {entry["chosen"] or "not chosen yet"} (the highest mean '
                f'validation metric: {by or "no candidate has finished its seeds"}).']
  if table['comparisons']:
    lines += ['', 'Verdicts (A beats B when mean_A − mean_B > 2·sqrt(sd_A²/n_A + sd_B²/n_B), '
              f'n ≥ {MIN_SEEDS} seeds each):', '',
              '| claim | A | B | metric | verdict |', '|---|---|---|---|---|']
    lines += [f'| {c["claim"]} | {c["better"]} | {c["worse"]} | {c["metrics_compared"]} | '
              f'{c["verdict"]} |' for c in table['comparisons']]
  return '\n'.join(lines) + '\n'


def figure(table: Mapping[str, Any], path: str) -> None:
  """results.png: per metric, each arm's mean with its sd (and its seeds as dots); beside them,
  for glimpse models, each glimpse's mean distance to the item per arm."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  arms = list(table['arms'])
  names = sorted({name for entry in table['arms'].values() for name in entry['metrics']
                  if 'distance' not in name})
  distances = sorted({name for entry in table['arms'].values() for name in entry['metrics']
                      if name.startswith('test_glimpse_distance_')},
                     key=lambda name: int(name.rsplit('_', 1)[1]))
  panels = len(names) + bool(distances)
  fig, axes = pyplot.subplots(1, panels, figsize=(4 * panels, 3.5), squeeze=False)
  for axis, name in zip(axes[0], names):
    for position, arm in enumerate(arms):
      entry = table['arms'][arm]
      if name not in entry['metrics']:
        continue
      summary = entry['metrics'][name]
      axis.errorbar(position, summary['mean'], yerr=summary['sd'], fmt='o', capsize=4)
      axis.plot([position] * len(entry['runs']), [run['metrics'][name] for run in entry['runs']],
                '.', color='grey', alpha=0.6)
    axis.set_xticks(range(len(arms)), arms, rotation=30, ha='right')
    axis.set_title(name)
  if distances:
    axis = axes[0][-1]
    for arm in arms:
      metrics = table['arms'][arm]['metrics']
      if all(name in metrics for name in distances):
        axis.errorbar(range(1, len(distances) + 1), [metrics[n]['mean'] for n in distances],
                      yerr=[metrics[n]['sd'] for n in distances], marker='o', capsize=3,
                      label=arm)
    for reference in ('test_centre_distance', 'test_random_location_distance'):
      values = [entry['metrics'][reference]['mean'] for entry in table['arms'].values()
                if reference in entry['metrics']]
      if values:
        axis.axhline(values[0], linestyle='--', color='grey')
        axis.annotate(reference[len('test_'):], (1, values[0]), fontsize=7)
    axis.set_xlabel('glimpse')
    axis.set_ylabel('distance to the item (px)')
    axis.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  pyplot.close(fig)


def write_results(study: Study, workdir: str) -> dict[str, Any]:
  """Writes <workdir>/<study.results_stem>.json, .md and .png; returns the table."""
  table = results(study, workdir)
  stem = os.path.join(workdir, study.results_stem)
  with open(stem + '.json', 'w') as file:
    json.dump(table, file, indent=1)
  with open(stem + '.md', 'w') as file:
    file.write(markdown(table))
  if any(entry['runs'] for entry in table['arms'].values()):
    figure(table, stem + '.png')
  return table


def main(argv: Sequence[str]) -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string('config', None, 'The study file (configs/studies/*.py).')
  flags.DEFINE_string('workdir', None, 'Where its runs and results go. Default: '
                      'runs/studies/<study file name> (or that of the study it shares runs '
                      'with).')
  flags.DEFINE_bool('report_only', False, 'Write the results of the finished runs; train none.')
  usage_text = command_line.usage(
      'python -m lpta.study --config=STUDY [--workdir=DIR] [--report_only]',
      'Trains every run of a study (configs/studies/: arms × seeds) through main.py, one after '
      'another, skipping the finished ones and resuming an interrupted one, then writes '
      'results.json, results.md (mean ± sd per arm, the verdict of each comparison) and '
      'results.png to the workdir.',
      ['python -m lpta.study --config=configs/studies/ram_translated.py',
       'python -m lpta.study --config=configs/studies/ram_translated.py --report_only'],
      ['config', 'workdir', 'report_only'])
  command_line.parse_flags(argv, usage_text)
  args = flags.FLAGS
  if not args.config:
    sys.exit('error: give --config=<a study file>, e.g. python -m lpta.study '
             '--config=configs/studies/ram_translated.py.')
  try:
    study = load_study(args.config)
    workdir = args.workdir or study.default_workdir
    os.makedirs(workdir, exist_ok=True)
    if not args.report_only:
      train_runs(study, workdir, log=lambda line: print(line, flush=True))
    table = write_results(study, workdir)
  except ConfigError as error:
    sys.exit(f'error: {error}')
  print(markdown(table), end='')
  print(f'Written to {os.path.join(workdir, study.results_stem)}.json, .md and .png.')


if __name__ == '__main__':
  main(sys.argv)
