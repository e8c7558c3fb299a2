"""Robustness to L∞ adversarial attacks in the pixel domain: evaluators `fgsm` and `pgd`.

  python -m lpta.evaluate --workdir=W --eval=fgsm --eval.compare_workdirs="('runs/other',)"
  python -m lpta.evaluate --workdir=W --eval=pgd --eval.steps=20 --eval.epsilons="(0., 0.03)"

Every attack works on pixels x in [0, 1] (the uint8 image divided by 255), before the run's own
normalisation, so ε is in pixel units (ε = 8/255 is 8 grey levels) and means the same for runs
with different input statistics; the gradient reaches the pixels through the normalisation
(lpta.runs.Run.apply). The loss is the cross-entropy of the true label y, L(x) = CE(f(x), y),
with the model in inference mode and its rng streams drawn from a key fixed by `seed`. An
adversarial image x' satisfies ‖x' − x‖∞ ≤ ε and 0 ≤ x' ≤ 1:
  fgsm (Goodfellow et al. 2015): x' = clip(x + ε·sign(∇ₓL(x)), 0, 1).
  pgd (Madry et al. 2018): x₀ = clip(x + u, 0, 1), u ~ U[−ε, ε] per pixel (`random_start`;
    otherwise x₀ = x), then `steps` times x_{t+1} = clip(Π_ε(x_t + α·sign(∇L(x_t))), 0, 1)
    with Π_ε the clip to [x − ε, x + ε] and α = step_size_factor·ε/steps.

Each evaluator reports the accuracy on adversarial images at every ε (`accuracy_eps_<ε>`; ε = 0
is the clean accuracy) of the run and of the runs in `compare_workdirs`, all attacked on the
same examples of the run's data split, and writes `accuracy.csv` (run, epsilon, accuracy) and
`accuracy.png` (accuracy against ε, one line per run).

Their fields: `AttackEvaluator.fields` (those of every evaluator, the radii and the compared
runs) and, for pgd, `PGD.fields`.
"""

from collections.abc import Sequence
from typing import ClassVar

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lpta import config_fields as cf
from lpta import evaluators
from lpta import objectives
from lpta import runs
from lpta.data import preprocessing
from lpta.errors import ConfigError

CHECKPOINT_STEPS = ('latest', 'best')
_RADII = cf.tuple_of(cf.number(0, 1), 'numbers in [0, 1]')


def loss_gradient(run: runs.Run, arrays, pixels: jax.Array, labels: jax.Array,
                  rng: jax.Array) -> jax.Array:
  """∇ₓ L [B, H, W, C] of each example's cross-entropy L = CE(f(x_b), y_b) at pixels x
  [B, H, W, C] in [0, 1]; labels int [B]. Examples are independent in inference mode, so the
  gradient of the sum is each example's own gradient."""

  def summed_loss(x):
    logits, _ = run.apply(arrays, x, rng)
    return objectives.cross_entropy(logits.astype(jnp.float32), labels).sum()

  return jax.grad(summed_loss)(pixels)


def project(candidate: jax.Array, pixels: jax.Array, epsilon) -> jax.Array:
  """The closest point to `candidate` with ‖x' − pixels‖∞ ≤ ε and 0 ≤ x' ≤ 1:
  clip(clip(candidate, pixels − ε, pixels + ε), 0, 1) (both sets are boxes that hold pixels)."""
  return jnp.clip(jnp.clip(candidate, pixels - epsilon, pixels + epsilon), 0., 1.)


def fgsm(run: runs.Run, arrays, pixels: jax.Array, labels: jax.Array, epsilon,
         rng: jax.Array) -> jax.Array:
  """FGSM: x' = clip(x + ε·sign(∇ₓL), 0, 1) [B, H, W, C]; pixels x [B, H, W, C] in [0, 1],
  ε in pixel units."""
  gradient = loss_gradient(run, arrays, pixels, labels, rng)
  return jnp.clip(pixels + epsilon * jnp.sign(gradient), 0., 1.)


def pgd(run: runs.Run, arrays, pixels: jax.Array, labels: jax.Array, epsilon, rng: jax.Array, *,
        steps: int, step_size_factor: float, start_rng: jax.Array | None = None) -> jax.Array:
  """L∞ PGD [B, H, W, C]: from x₀ (x + U[−ε, ε] projected, or x when `start_rng` is None),
  `steps` times x ← project(x + α·sign(∇ₓL(x))) with α = step_size_factor·ε/steps."""
  step_size = step_size_factor * epsilon / steps
  start = pixels
  if start_rng is not None:
    noise = jax.random.uniform(start_rng, pixels.shape, pixels.dtype, -1., 1.)
    start = project(pixels + epsilon * noise, pixels, epsilon)

  # A Python loop, unrolled in the jitted program: inside lax.fori_loop, XLA:CPU ran the same
  # 10 steps on the quickstart network about 5 times slower (31 s against 6.4 s per 250 images).
  adversarial = start
  for _ in range(steps):
    gradient = loss_gradient(run, arrays, adversarial, labels, rng)
    adversarial = project(adversarial + step_size * jnp.sign(gradient), pixels, epsilon)
  return adversarial


def run_label(run: runs.Run) -> str:
  """How a run is named in the CSV and the legend: '<model> (<workdir>)'."""
  return f'{run.config.model.name} ({run.workdir})'


class AttackEvaluator(evaluators.Evaluator):
  """Accuracy under an L∞ attack at several ε; subclasses set `name`, `title` and `attack`."""
  title: ClassVar[str]  # the attack's name in the plot

  fields = evaluators.Evaluator.fields + (
      cf.Field('epsilons', (0., 0.01, 0.02, 0.05, 0.1, 0.2), 'The attack radii ε, distinct '
               'numbers in [0, 1] (pixel units; 0: the clean accuracy).',
               cf.Check('must be a non-empty tuple of numbers in [0, 1]',
                        lambda values: _RADII.accepts(values) and len(values) > 0),
               hint='(e.g. --eval.epsilons="(0.0, 1.0)")'),
      cf.Field('compare_workdirs', (), 'Workdirs of other runs to attack on the same examples; '
               'they must take images of the same shape and have as many classes.',
               cf.tuple_of(cf.Check('must be a non-empty string',
                                    lambda workdir: isinstance(workdir, str) and workdir != ''),
                           'run workdirs'),
               hint='(e.g. --eval.compare_workdirs="(\'runs/a\', \'runs/b\')")'),
      cf.Field('compare_step', 'latest', "Their checkpoint: 'latest', 'best' or a step.",
               cf.Check("must be 'latest', 'best' or a step number", lambda step: (
                   step in CHECKPOINT_STEPS or cf.integer(0).accepts(step)
                   or (isinstance(step, str) and step.isdigit())))),
  )

  def validate(self) -> None:
    super().validate()
    epsilons = self.config.epsilons
    if len(set(epsilons)) != len(epsilons):
      raise ConfigError(f'--eval.epsilons={epsilons!r} repeats a value; give each ε once.')

  def attack(self, run: runs.Run, arrays, pixels, labels, epsilon, rng, start_rng) -> jax.Array:
    """Adversarial pixels [B, H, W, C] in [0, 1] within ε of `pixels` (module docstring)."""
    raise NotImplementedError

  def count_correct_function(self, run: runs.Run):
    """Jitted (arrays, images uint8 [B, H, W, C], labels [B], mask [B], ε, rng, start_rng, *,
    attacked) -> Σ_b mask_b·[argmax f(x'_b) = y_b], the masked count of correct predictions on
    the attacked images (on the clean ones when `attacked` is False: ε = 0 needs no attack). ε
    is traced, so every ε > 0 runs the same compiled program. (A lax.cond on ε > 0 instead ran
    the attack inside a conditional, where XLA:CPU was several times slower.)"""

    def count_correct(arrays, images, labels, mask, epsilon, rng, start_rng, *, attacked):
      pixels = preprocessing.to_unit_range(images)
      if attacked:
        pixels = self.attack(run, arrays, pixels, labels, epsilon, rng, start_rng)
      logits, _ = run.apply(arrays, pixels, rng)
      return jnp.sum(mask * (jnp.argmax(logits, axis=-1) == labels))

    return jax.jit(count_correct, static_argnames='attacked')

  def accuracies(self, run: runs.Run, examples: dict[str, np.ndarray]) -> list[float]:
    """Accuracy under attack at each of `config.epsilons`, over `examples` ({'image': uint8
    [N, H, W, C], 'label': [N]}), padded examples excluded. The model's rng is fixed by
    `config.seed`; the random start of batch i uses a key folded from it and i."""
    count_correct = self.count_correct_function(run)
    key = jax.random.key(self.config.seed)
    rng, start_key = jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)
    arrays = {'image': examples['image'], 'label': examples['label']}
    results = []
    for epsilon in self.config.epsilons:
      correct = 0.
      for index, batch in enumerate(evaluators.batches(arrays, self.config.batch_size)):
        correct += float(count_correct(run.arrays, batch['image'], batch['label'],
                                       batch['mask'], jnp.float32(epsilon), rng,
                                       jax.random.fold_in(start_key, index),
                                       attacked=epsilon > 0))
      results.append(correct / len(arrays['label']))
    return results

  def compare_runs(self, run: runs.Run) -> list[runs.Run]:
    """The runs of `compare_workdirs` at `compare_step`; each must match `run`'s image shape
    and classes."""
    loaded = []
    for workdir in self.config.compare_workdirs:
      other = runs.load_run(workdir, compare_step(self.config))
      if other.image_shape != run.image_shape or len(other.class_names) != len(run.class_names):
        raise ConfigError(
            f'--eval.compare_workdirs: {workdir} takes images {other.image_shape} with '
            f'{len(other.class_names)} classes, but {run.workdir} takes {run.image_shape} with '
            f'{len(run.class_names)}; compare runs trained on the same data set.')
      loaded.append(other)
    return loaded

  def evaluate(self, run: runs.Run, output: evaluators.Output) -> dict[str, float]:
    """{'accuracy_eps_<ε>': accuracy} of `run`; also writes accuracy.csv and accuracy.png
    for it and the compared runs."""
    all_runs = [run, *self.compare_runs(run)]  # loaded before the long attacks start
    examples = evaluators.examples(run, self.config)
    curves = {run_label(r): self.accuracies(r, examples) for r in all_runs}
    epsilons = list(self.config.epsilons)
    output.write_csv('accuracy.csv', {
        'run': [label for label in curves for _ in epsilons],
        'epsilon': epsilons * len(curves),
        'accuracy': [value for values in curves.values() for value in values]})
    output.save_figure(self.figure(curves, len(examples['label'])), 'accuracy.png')
    return {f'accuracy_eps_{epsilon:g}': accuracy
            for epsilon, accuracy in zip(epsilons, curves[run_label(run)])}

  def figure(self, curves: dict[str, Sequence[float]], num_examples: int):
    """Accuracy against ε, one line per run."""
    from matplotlib import figure as mpl_figure  # pylint: disable=g-import-not-at-top
    order = np.argsort(self.config.epsilons)
    epsilons = np.asarray(self.config.epsilons)[order]
    fig = mpl_figure.Figure(figsize=(6.4, 4.4))
    axes = fig.add_subplot()
    for label, values in curves.items():
      axes.plot(epsilons, np.asarray(values)[order], marker='o', label=label)
    axes.set_xlabel('ε (L∞, pixel units)')
    axes.set_ylabel('accuracy')
    axes.set_ylim(-0.02, 1.02)
    axes.set_title(f'{self.title}, L∞ in the pixel domain [0, 1]\n'
                   f'{num_examples} {self.config.split} examples')
    axes.grid(alpha=0.3)
    axes.legend(fontsize='small')
    return fig


def compare_step(config: ml_collections.ConfigDict) -> str | int:
  """`compare_step` as load_run takes it: 'latest', 'best' or a step (digits become a number)."""
  step = config.compare_step
  return int(step) if isinstance(step, str) and step.isdigit() else step


@evaluators.register
class FGSM(AttackEvaluator):
  """Accuracy under FGSM (module docstring)."""
  name = 'fgsm'
  title = 'FGSM'

  def attack(self, run, arrays, pixels, labels, epsilon, rng, start_rng):
    del start_rng
    return fgsm(run, arrays, pixels, labels, epsilon, rng)


@evaluators.register
class PGD(AttackEvaluator):
  """Accuracy under L∞ PGD (module docstring)."""
  name = 'pgd'

  # steps + 1 forward and backward passes per image and ε: 500 images keep the quickstart and
  # its baseline under 5 minutes on 2 CPU cores (± 2 points of standard error at most).
  fields = cf.with_defaults(AttackEvaluator.fields, max_examples=500) + (
      cf.Field('steps', 10, 'The iterations of the attack.', cf.POSITIVE_INTEGER),
      cf.Field('step_size_factor', 2.5, 'The step size α in units of ε/steps.',
               cf.POSITIVE_NUMBER, hint='(α = step_size_factor·ε/steps; 2.5 in Madry et al.)'),
      cf.Field('random_start', True, 'Start from x + U[−ε, ε] per pixel, projected; False: from '
               'x.', cf.BOOLEAN),
  )

  @property
  def title(self) -> str:
    start = 'random start' if self.config.random_start else 'no random start'
    return (f'PGD, {self.config.steps} steps of {self.config.step_size_factor:g}·ε/'
            f'{self.config.steps}, {start}')

  def attack(self, run, arrays, pixels, labels, epsilon, rng, start_rng):
    return pgd(run, arrays, pixels, labels, epsilon, rng, steps=self.config.steps,
               step_size_factor=self.config.step_size_factor,
               start_rng=start_rng if self.config.random_start else None)
