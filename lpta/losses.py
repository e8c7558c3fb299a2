"""Losses of Attention Transfer (Zagoruyko & Komodakis, ICLR 2017), knowledge distillation and the
REINFORCE terms of recurrent glimpse models (Mnih et al., NIPS 2014).

Activation-based AT (the AT paper's §3.1) compares, at each transfer point j, channel-free attention
maps of student and teacher activations; gradient-based AT (§3.2) compares input gradients; the
flip-symmetry loss compares a network's input gradient with that of the mirrored image. Knowledge
distillation is Hinton's, as in the AT code's utils.py. Everything is pure jax.numpy and jit-able;
the teacher's inputs are treated as constants (jax.lax.stop_gradient). Shapes follow Flax (NHWC):
activations [B, H, W, C], images [B, H, W, C], logits [B, K], integer labels [B]. The glimpse terms
(RAM's "hybrid loss", Mnih et al. 2014) take per-step log-probabilities and baseline logits
[B, M, T] and rewards [B, M] (M trajectories per image).
"""

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import optax

from lpta.errors import ConfigError

AT_FORMS = ('paper', 'code')
BETA_SCHEDULES = ('constant', 'linear', 'cosine')
# Floor of the norm in the map normalisation, as PyTorch's F.normalize in the AT code's `at`.
NORMALISE_EPSILON = 1e-12

PerExampleLoss = Callable[[jax.Array], jax.Array]


def _clipped_norm(x):
  """max(‖x‖₂, ε) over the last axis, keeping it: [B, N] -> [B, 1].

  Written as sqrt(max(Σx², ε²)) so that the gradient is 0, not NaN, where x = 0.
  """
  squared = jnp.sum(jnp.square(x), axis=-1, keepdims=True)
  return jnp.sqrt(jnp.maximum(squared, NORMALISE_EPSILON**2))


def _safe_norm(x):
  """‖x‖₂ over the last axis: [B, N] -> [B], with gradient 0 (not NaN) at x = 0."""
  squared = jnp.sum(jnp.square(x), axis=-1)
  positive = squared > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.)), 0.)


def _flatten(x):
  """[B, ...] -> float32 [B, N]."""
  return x.reshape(x.shape[0], -1).astype(jnp.float32)


def activation_attention_map(activations, p: float = 2.0):
  """Normalised activation-based attention map Q / ‖Q‖₂ (AT paper §3.1; the AT code's `at`).

  Q = vec((1/C) Σ_c |A_c|^p), positions flattened row-major (H·W), divided per example by
  max(‖Q‖₂, 1e-12). The paper sums over channels, the code averages: the same after the division.

  Args:
    activations: [B, H, W, C], any float dtype.
    p: exponent of the mapping function (2 in the paper and the code).
  Returns:
    float32 [B, H·W], each row of unit L2 norm (or zero).
  """
  maps = jnp.mean(jnp.abs(activations.astype(jnp.float32))**p, axis=-1)
  maps = maps.reshape(maps.shape[0], -1)
  return maps / _clipped_norm(maps)


def check_matching_maps(student_activations: Sequence[jax.Array],
                        teacher_activations: Sequence[jax.Array]) -> None:
  """Raises ConfigError unless both have as many transfer points, pairwise of equal H×W.

  Channel counts may differ (the maps are channel-free). Shapes are static, so under jit this
  runs once, at trace time.
  """
  if len(student_activations) != len(teacher_activations):
    raise ConfigError(f'attention transfer: the student has {len(student_activations)} transfer '
                      f'points and the teacher {len(teacher_activations)}; they must have the '
                      'same number (3 groups in a WRN, 4 in an ImageNet ResNet).')
  for point, (student, teacher) in enumerate(zip(student_activations, teacher_activations),
                                             start=1):
    if student.shape[1:3] != teacher.shape[1:3]:
      raise ConfigError(
          f'attention transfer point {point}: the student\'s maps are '
          f'{student.shape[1]}×{student.shape[2]} and the teacher\'s '
          f'{teacher.shape[1]}×{teacher.shape[2]}; student and teacher must have maps of equal '
          'size (the same input size and group strides).')


def _paper_term(student_maps, teacher_maps, beta):
  """(β/2) · mean_b ‖Q_S − Q_T‖₂ for one point: maps [B, N] -> scalar."""
  return beta / 2 * jnp.mean(_safe_norm(student_maps - teacher_maps))


def _code_term(student_maps, teacher_maps, beta):
  """β · mean_{b,i} (Q_S − Q_T)² for one point: maps [B, N] -> scalar."""
  return beta * jnp.mean(jnp.square(student_maps - teacher_maps))


_AT_TERMS = {'paper': _paper_term, 'code': _code_term}


def attention_transfer_loss(student_activations: Sequence[jax.Array],
                            teacher_activations: Sequence[jax.Array], form: str, beta,
                            p: float = 2.0):
  """Activation-based attention transfer summed over the transfer points j.

  'paper' (the AT paper, §3.1): Σ_j (β/2) · mean_b ‖Q_S^j − Q_T^j‖₂, an L2 norm, not
    squared; the paper sets β per point to about 10³/(H_j·W_j·B).
  'code' (the released utils.py/cifar.py): Σ_j β · mean_{b, i} (Q_S^j[b, i] − Q_T^j[b, i])²,
    i.e. squared and averaged over batch and positions; the AT code's README runs use β = 1000.
  Q^j are the normalised maps of activation_attention_map.

  Args:
    student_activations: sequence of [B, H_j, W_j, C_j].
    teacher_activations: sequence of [B, H_j, W_j, C'_j] (constants: no gradient flows).
    form: 'paper' or 'code'.
    beta: β, a float or a traced scalar (see decayed_beta).
    p: exponent of the attention maps.
  Returns:
    (total, per_point): the float32 scalar total and the tuple of the β-weighted per-point terms
    whose sum it is.
  """
  if form not in AT_FORMS:
    raise ConfigError(f'attention transfer form {form!r} is not valid; use one of '
                      f'{", ".join(AT_FORMS)}.')
  check_matching_maps(student_activations, teacher_activations)
  per_point = tuple(
      _AT_TERMS[form](activation_attention_map(student, p),
                      activation_attention_map(jax.lax.stop_gradient(teacher), p), beta)
      for student, teacher in zip(student_activations, teacher_activations))
  return sum(per_point, jnp.zeros((), jnp.float32)), per_point


def distillation_divergence(student_logits, teacher_logits, temperature):
  """T² · mean_b KL(q_T ‖ p_S), with p_S = softmax(s/T), q_T = softmax(t/T) and
  KL(q ‖ p) = Σ_k q_k (log q_k − log p_k) summed over classes.

  Args:
    student_logits: [B, K].
    teacher_logits: [B, K] (constants: no gradient flows).
    temperature: T.
  Returns:
    float32 scalar.
  """
  student_log_probs = jax.nn.log_softmax(student_logits.astype(jnp.float32) / temperature)
  teacher_log_probs = jax.nn.log_softmax(
      jax.lax.stop_gradient(teacher_logits.astype(jnp.float32)) / temperature)
  kl = jnp.sum(jnp.exp(teacher_log_probs) * (teacher_log_probs - student_log_probs), axis=-1)
  return temperature**2 * jnp.mean(kl)


def distillation_loss(student_logits, teacher_logits, labels, temperature, alpha):
  """Hinton knowledge distillation with the AT code's weighting (after its fix, PR #30).

  L = α · distillation_divergence(s, t, T) + (1 − α) · mean_b CE(s, y).

  Args:
    student_logits: [B, K].
    teacher_logits: [B, K] (constants: no gradient flows).
    labels: integer [B].
    temperature: T.
    alpha: α, the weight of the distillation term; α = 0 is plain cross-entropy.
  Returns:
    float32 scalar.
  """
  log_probs = jax.nn.log_softmax(student_logits.astype(jnp.float32))
  cross_entropy = -jnp.take_along_axis(log_probs, labels[:, None], axis=-1)[:, 0]
  return (alpha * distillation_divergence(student_logits, teacher_logits, temperature)
          + (1 - alpha) * jnp.mean(cross_entropy))


def decayed_beta(beta, step, num_steps, schedule: str):
  """β at `step` of `num_steps` for AT+KD with a decaying attention weight.

  The paper announces a decaying β for AT+KD but neither it nor the code gives the schedule; these
  are our choices. With progress t = clip(step / num_steps, 0, 1):
  'constant': β; 'linear': β · (1 − t); 'cosine': β · ½ · (1 + cos(π t)).

  Args:
    beta: β at step 0.
    step: the current step, an int or a traced integer scalar.
    num_steps: the step at which the decaying schedules reach 0.
    schedule: 'constant', 'linear' or 'cosine'.
  Returns:
    float32 scalar.
  """
  if schedule not in BETA_SCHEDULES:
    raise ConfigError(f'β schedule {schedule!r} is not valid; use one of '
                      f'{", ".join(BETA_SCHEDULES)}.')
  beta = jnp.asarray(beta, jnp.float32)
  progress = jnp.clip(jnp.asarray(step, jnp.float32) / num_steps, 0., 1.)
  if schedule == 'linear':
    return beta * (1 - progress)
  if schedule == 'cosine':
    return beta * 0.5 * (1 + jnp.cos(jnp.pi * progress))
  return beta


def input_gradients(per_example_loss_fn: PerExampleLoss, images):
  """J = ∂(Σ_i ℓ_i)/∂x, the input gradient of gradient-based AT (AT paper §3.2).

  Row i is ∂ℓ_i/∂x_i when the examples do not interact (e.g. BatchNorm in inference mode); with
  batch statistics it also holds the other examples' losses' dependence on x_i.

  Args:
    per_example_loss_fn: images [B, H, W, C] -> losses [B].
    images: [B, H, W, C].
  Returns:
    [B, H, W, C], like images.
  """
  return jax.grad(lambda x: jnp.sum(per_example_loss_fn(x)))(images)


def gradient_attention_transfer_loss(student_input_gradients, teacher_input_gradients, beta):
  """Gradient-based AT (AT paper §3.2): (β/2) · mean_b ‖J_S − J_T‖₂.

  J_S, J_T are input gradients (input_gradients) flattened per example. The norm's gradient is 0
  where J_S = J_T, so the total loss stays differentiable (twice, as training needs) there.

  Args:
    student_input_gradients: [B, H, W, C].
    teacher_input_gradients: [B, H, W, C] (constants: no gradient flows).
    beta: β.
  Returns:
    float32 scalar.
  """
  difference = (_flatten(student_input_gradients)
                - _flatten(jax.lax.stop_gradient(teacher_input_gradients)))
  return beta / 2 * jnp.mean(_safe_norm(difference))


def _flip_width(images):
  """Mirrors the width axis: [B, H, W, C] -> [B, H, W, C]."""
  return images[:, :, ::-1]


def flip_symmetry_loss(per_example_loss_fn: PerExampleLoss, images, beta):
  """Flip-invariance regulariser (AT paper §3.2), no teacher.

  (β/2) · mean_b ‖∂ℓ(x)/∂x − flip(∂ℓ(flip(x))/∂x)‖₂, with flip mirroring the width axis: zero
  for a network whose loss is invariant to horizontal flips.

  Args:
    per_example_loss_fn: images [B, H, W, C] -> losses [B] (labels closed over).
    images: [B, H, W, C].
    beta: β.
  Returns:
    float32 scalar.
  """
  gradients = input_gradients(per_example_loss_fn, images)
  mirrored = _flip_width(input_gradients(per_example_loss_fn, _flip_width(images)))
  return beta / 2 * jnp.mean(_safe_norm(_flatten(gradients) - _flatten(mirrored)))


def reinforce_loss(log_probs, rewards, baselines):
  """REINFORCE with a baseline: −mean_b Σ_t log π(l_t^b) · (R^b − b_t^b).

  Its gradient is the policy-gradient estimate of −E[R]; the advantage R − b_t is a constant
  (stop-gradient), so the term trains only what `log_probs` depends on. Averaged, not summed,
  over the batch, so its weight relative to the cross-entropy does not grow with the batch size.
  Leading axes beyond the first (e.g. M trajectories per image, [B, M, T]) are averaged too.

  Args:
    log_probs: [B, ..., T] log-probability of each chosen location.
    rewards: [B, ...] the episode's reward (1 if the classification is right, else 0).
    baselines: [B, ..., T] the reward predicted at each choice (or [B, ..., 1], one per
      episode).
  Returns:
    float32 scalar.
  """
  advantages = jax.lax.stop_gradient(rewards[..., None] - baselines)
  return -jnp.mean(jnp.sum(log_probs * advantages, axis=-1))


def leave_one_out_baselines(rewards):
  """Each trajectory's baseline from the others of its image: rewards [B, M] (M ≥ 2) -> [B, M],
  b^{b,m} = Σ_{m' ≠ m} R^{b,m'} / (M − 1).

  Independent of trajectory m's own actions, so REINFORCE stays unbiased; an image every
  trajectory gets right (or wrong) gives every one of them advantage 0 (Kool, van Hoof &
  Welling 2019, "Buy 4 REINFORCE samples, get a baseline for free").
  """
  trajectories = rewards.shape[1]
  return (jnp.sum(rewards, axis=1, keepdims=True) - rewards) / (trajectories - 1)


def baseline_loss(baseline_logits, rewards):
  """The baselines' log loss: mean −[R log b_t + (1 − R) log(1 − b_t)], b_t = sigmoid(logit_t),
  for baseline logits [B, ..., T] and rewards [B, ...] in {0, 1} (constants).

  A logistic regression of the reward: its minimiser is b_t = P(R = 1 | h_t), the expected
  reward, as for the squared error, and its gradient with respect to a logit is b_t − R, bounded.
  Zero when there is no learned baseline (T = 0).
  """
  if baseline_logits.shape[-1] == 0:
    return jnp.zeros((), jnp.float32)
  labels = jnp.broadcast_to(jax.lax.stop_gradient(rewards)[..., None], baseline_logits.shape)
  return jnp.mean(optax.sigmoid_binary_cross_entropy(baseline_logits, labels))
