"""The Recurrent Attention Model (Mnih, Heess, Graves & Kavukcuoglu, NIPS 2014).

Per step t = 0 … T−1 the model looks at the image through the glimpse sensor (lpta.models.glimpse)
at l_t, and updates its recurrent state:
  h_g = ReLU(W_g ρ(x, l_t)),  h_l = ReLU(W_l l_t),  g_t = ReLU(W_gg h_g + W_lg h_l)   (glimpse network)
  h_t = f_h(h_{t−1}, g_t)        (core: ReLU RNN, h_t = ReLU(W_hh h_{t−1} + W_gh g_t), or an LSTM)
After every step but the last it chooses the next location with a Gaussian policy of fixed σ,
  μ_t = tanh(W_μ h_t),  l_{t+1} ~ N(μ_t, σ² I),  used clipped to [-1, 1]² and without gradient,
(optionally with a ReLU hidden layer, μ_t = tanh(W_μ ReLU(W_1 h_t)), as later RAM code does;
with location_init 'zero' the last layer starts at zero, so the untrained policy looks at the
centre, ± σ when sampling) and estimates the reward with a baseline b_t = sigmoid(W_b h_t + c),
the probability of a right answer given h_t (a logistic regression: the rewards are 0 or 1, and
unlike a linear baseline regressed by squared error its gradient stays bounded however large h_t
grows; the linear one diverged with SGD at lr 0.05 once the ReLU RNN's states grew, and its
advantages in the thousands threw the policy into the corners). The baseline reads h_t through a
stop-gradient, so that only its regression trains it. The policy does too with policy_gradient
'policy', so that the REINFORCE term trains the location network alone; with 'core' it reads h_t
itself, so that REINFORCE also trains the core and the glimpse network, as in the paper's Eq. 2.
The classifier reads the last state h_{T−1}. The first location l_0 is the image centre
('centre') or uniform in [-1, 1]² ('random'). With policy 'random' every location is uniform
(the "random glimpses" baseline of RAM's Table 2), with policy 'centre' every location is the
centre (± σ when sampling), with policy 'oracle' every location is the centre of the image's
object, given as `object_locations` (± σ when sampling: the upper bound of where to look): none
of the three has a decision to score.

Log-probabilities are those of the Gaussian sample, before clipping: clipping belongs to the
environment (a location off the image is looked at from the border), not to the policy.

Pixels off the image are zero in the network's (normalised) units, the data mean, with padding
'mean'; with 'black' they take each image's darkest value, black on the canvases.
"""

from collections.abc import Sequence
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from lpta.errors import ConfigError
from lpta.models import at_least_float32
from lpta.models import glimpse

CORES = ('rnn', 'lstm')
INITIAL_LOCATIONS = ('learned', 'centre', 'random')
POLICIES = ('learned', 'random', 'centre', 'oracle')
LOCATION_INITS = ('default', 'zero')
POLICY_GRADIENTS = ('policy', 'core')
PADDINGS = ('mean', 'black')


def gaussian_log_prob(samples: jax.Array, means: jax.Array, std: float) -> jax.Array:
  """log N(samples; means, std² I), summed over the last axis: [..., D], [..., D] -> [...].

  = Σ_d [−(x_d − μ_d)² / (2σ²) − log σ − ½ log 2π].
  """
  squared = jnp.square((samples - means) / std)
  return jnp.sum(-0.5 * squared - math.log(std) - 0.5 * math.log(2 * math.pi), axis=-1)


def sample_location(means: jax.Array, std: float, rng: jax.Array | None):
  """(location [B, 2] clipped to [-1, 1]², without gradient; log π [B]) of a Gaussian policy
  with means [B, 2]: a draw from N(means, std² I) with `rng`, or the means with None. The
  log-probability is that of the unclipped draw and carries the gradient to the means."""
  noise = 0. if rng is None else jax.random.normal(rng, means.shape, means.dtype)
  samples = jax.lax.stop_gradient(means + std * noise)
  return jnp.clip(samples, -1, 1), gaussian_log_prob(samples, means, std)


class GlimpseNetwork(nn.Module):
  """g = ReLU(W_gg ReLU(W_g patches) + W_lg ReLU(W_l l)): images [B, H, W, C], locations [B, 2]
  -> [B, output_units]. Off the image the patches are 0 (padding 'mean') or each image's
  darkest value ('black')."""
  patch_size: int
  num_scales: int
  scale_factor: int
  glimpse_units: int
  location_units: int
  output_units: int
  padding: str = 'mean'
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images, locations):
    fill = images.min(axis=(1, 2, 3)) if self.padding == 'black' else None
    patches = glimpse.glimpse(images, locations, self.patch_size, self.num_scales,
                              self.scale_factor, fill)
    dense = lambda units, name: nn.Dense(units, dtype=self.dtype, name=name)
    what = nn.relu(dense(self.glimpse_units, 'what')(patches.reshape(patches.shape[0], -1)))
    where = nn.relu(dense(self.location_units, 'where')(locations))
    return nn.relu(dense(self.output_units, 'what_out')(what)
                   + dense(self.output_units, 'where_out')(where))


class ReluRNNCell(nn.Module):
  """RAM's core: h_t = ReLU(W_hh h_{t−1} + W_gh g_t + b). Carry and output: h [B, units]."""
  units: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, carry, inputs):
    hidden = nn.relu(nn.Dense(self.units, use_bias=False, dtype=self.dtype, name='recurrent')(carry)
                     + nn.Dense(self.units, dtype=self.dtype, name='input')(inputs))
    return hidden, hidden

  def initial_carry(self, batch_size: int):
    return jnp.zeros((batch_size, self.units), self.dtype)


class LSTMCore(nn.Module):
  """An LSTM core; carry (c, h), output h [B, units]."""
  units: int
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    self.cell = nn.OptimizedLSTMCell(self.units, dtype=self.dtype)

  def __call__(self, carry, inputs):
    return self.cell(carry, inputs)

  def initial_carry(self, batch_size: int):
    zeros = jnp.zeros((batch_size, self.units), self.dtype)
    return zeros, zeros


class LocationNetwork(nn.Module):
  """The policy's mean before the tanh: W_μ h (RAM), or W_μ ReLU(W_1 h) with `hidden_units`
  > 0. h [B, units] -> [B, 2]. With init 'zero', W_μ and its bias start at zero."""
  hidden_units: int = 0
  init: str = 'default'

  @nn.compact
  def __call__(self, state):
    if self.hidden_units:
      state = nn.relu(nn.Dense(self.hidden_units, name='hidden')(state))
    if self.init == 'zero':
      return nn.Dense(2, kernel_init=nn.initializers.zeros, name='mean')(state)
    return nn.Dense(2, name='mean')(state)


class RecurrentAttentionModel(nn.Module):
  """RAM. images [B, H, W, C] -> (logits [B, K], aux).

  In training every image is looked at through M = `train_trajectories` independently sampled
  trajectories (Ba, Mnih & Kavukcuoglu 2015 sample several per image; with M ≥ 2 each one's
  REINFORCE baseline is the mean reward of the others, lpta.losses.leave_one_out_baselines), in
  inference through one (M = 1).

  aux: 'trajectory_logits' [B, M, K] each trajectory's logits (the returned logits are the log of
  their mean class probabilities); 'locations' [B, T, 2] the (clipped) glimpse locations of the
  first trajectory; 'location_means' [B, C, 2] the policy's means μ of its decisions;
  'location_kernel_norm' [B], the Frobenius norm of W_μ (0 without a learned policy), for the
  logs; 'log_probs' [B, M, C] the policy's log-probability of each chosen location;
  'baseline_logits' [B, M, C] or [B, M, 0] the logit of the learned reward estimate made with
  each choice, b = sigmoid(logit), learned only with train_trajectories = 1. C = T when the
  policy also chooses the first location (initial_location 'learned': l_1 from h_0 = 0, a learned
  starting point explored with the same σ), T − 1 when l_1 is at the centre or uniformly random,
  and 0 for policies 'random', 'centre' and 'oracle' (which have no parameters for them).
  object_locations [B, 2]: the centres of the images' objects in [-1, 1]², read by policy
  'oracle' alone (lpta.families.glimpse gives them from the batch's boxes). uniform_glimpses (a
  boolean scalar, the warm-up of lpta.families.glimpse's uniform_warmup): the policy's locations
  are replaced by uniform ones and their log-probabilities by 0, so REINFORCE has nothing to
  reinforce.

  Locations are sampled in training and, with `sample_locations=True`, in inference; otherwise
  the policy's means are used (deterministic evaluation). Draws from the 'location' stream.
  """
  num_classes: int
  num_glimpses: int = 6
  patch_size: int = 12
  num_scales: int = 3
  scale_factor: int = 2
  location_std: float = 0.11
  glimpse_units: int = 128
  location_units: int = 128
  glimpse_output_units: int = 256
  core: str = 'rnn'
  hidden_units: int = 256
  initial_location: str = 'learned'
  policy: str = 'learned'
  location_hidden_units: int = 0
  location_init: str = 'default'
  policy_gradient: str = 'policy'
  padding: str = 'mean'
  train_trajectories: int = 1
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images, *, train: bool, sample_locations: bool | None = None,
               object_locations: jax.Array | None = None,
               uniform_glimpses: jax.Array | bool = False):
    sample = train if sample_locations is None else sample_locations
    trajectories = self.train_trajectories if train else 1
    # Row b·M + m is trajectory m of image b.
    images = jnp.repeat(images, trajectories, axis=0)
    targets = self._fixed_target(images.shape[0], trajectories, object_locations)
    batch_size = images.shape[0]
    glimpse_network = GlimpseNetwork(
        self.patch_size, self.num_scales, self.scale_factor, self.glimpse_units,
        self.location_units, self.glimpse_output_units, self.padding, self.dtype,
        name='glimpse_network')
    core_class = ReluRNNCell if self.core == 'rnn' else LSTMCore
    core = core_class(self.hidden_units, self.dtype, name='core')
    policy = LocationNetwork(self.location_hidden_units, self.location_init, name='location')
    baseline = nn.Dense(1, dtype=jnp.float32, name='baseline')

    carry = core.initial_carry(batch_size)
    # h_0: what the policy sees before the first glimpse when initial_location is 'learned'.
    state = jnp.zeros((batch_size, self.hidden_units), jnp.float32)
    locations, means, log_probs, baseline_logits = [], [], [], []
    for step in range(self.num_glimpses):
      if self.policy != 'learned' or not (step or self.initial_location == 'learned'):
        location = self._unchosen_location(targets, sample)
      else:
        policy_state = state if self.policy_gradient == 'core' else jax.lax.stop_gradient(state)
        means.append(jnp.tanh(policy(policy_state)))
        key = self.make_rng('location') if sample else None
        location, log_prob = sample_location(means[-1], self.location_std, key)
        if uniform_glimpses is not False:
          location, log_prob = _uniform_when(uniform_glimpses, location, log_prob, key)
        log_probs.append(log_prob)
        if self.train_trajectories == 1:
          baseline_logits.append(baseline(jax.lax.stop_gradient(state))[:, 0])
      locations.append(location)
      carry, hidden = core(carry, glimpse_network(images, location))
      state = at_least_float32(hidden)
    per_image = lambda values: values.reshape(
        batch_size // trajectories, trajectories, *values.shape[1:])
    logits = per_image(at_least_float32(
        nn.Dense(self.num_classes, dtype=self.dtype, name='classifier')(hidden)))
    kernel_norm = (jnp.linalg.norm(policy.variables['params']['mean']['kernel'])
                   if means else jnp.zeros((), jnp.float32))
    aux = {'trajectory_logits': logits,
           'locations': per_image(jnp.stack(locations, axis=1))[:, 0],
           'location_means': (per_image(jnp.stack(means, axis=1))[:, 0] if means
                              else jnp.zeros((batch_size // trajectories, 0, 2), jnp.float32)),
           'location_kernel_norm': jnp.full((batch_size // trajectories,), kernel_norm),
           'log_probs': per_image(_stack_steps(log_probs, batch_size)),
           'baseline_logits': per_image(_stack_steps(baseline_logits, batch_size))}
    if trajectories == 1:
      return logits[:, 0], aux
    return jax.nn.logsumexp(jax.nn.log_softmax(logits), axis=1) - math.log(trajectories), aux

  def _fixed_target(self, batch_size: int, trajectories: int, object_locations):
    """[B·M, 2]: where the unchosen glimpses aim: the objects' centres for policy 'oracle', else
    the image centre (also for the oracle while initialising: it has no parameters to shape)."""
    if self.policy != 'oracle' or (object_locations is None and self.is_initializing()):
      return jnp.zeros((batch_size, 2), jnp.float32)
    if object_locations is None:
      raise ConfigError("config.model.policy='oracle' looks at each image's object box, which "
                        'only training and evaluation on data with boxes give; it is a '
                        "study's control, not a model to run on images alone.")
    return jnp.repeat(object_locations.astype(jnp.float32), trajectories, axis=0)

  def _unchosen_location(self, target, sample: bool):
    """[B, 2]: a location the policy does not choose: uniform for policy 'random' or
    initial_location 'random'; for policies 'centre' and 'oracle' the target (the centre or the
    object's), ± σ when sampling; else the centre."""
    if self.policy == 'random' or (self.policy == 'learned'
                                   and self.initial_location == 'random'):
      return jax.random.uniform(self.make_rng('location'), target.shape, jnp.float32, -1, 1)
    if self.policy in ('centre', 'oracle'):
      return sample_location(target, self.location_std,
                             self.make_rng('location') if sample else None)[0]
    return target


def _uniform_when(uniform_glimpses: jax.Array, location: jax.Array, log_prob: jax.Array,
                  key: jax.Array | None):
  """(location [B, 2], log π [B]): a uniform location in [-1, 1]² (drawn from fold_in(key, 1),
  so that the policy's own draws stay those without a warm-up) and 0 where `uniform_glimpses`,
  else the policy's."""
  if key is None:
    raise ValueError('uniform_glimpses is a warm-up of training: it needs sampled locations.')
  uniform = jax.random.uniform(jax.random.fold_in(key, 1), location.shape, jnp.float32, -1, 1)
  return (jnp.where(uniform_glimpses, uniform, location),
          jnp.where(uniform_glimpses, 0., log_prob))


def _stack_steps(values: Sequence[jax.Array], batch_size: int) -> jax.Array:
  """[B, len(values)] from per-step [B] arrays (an empty [B, 0] when nothing was chosen)."""
  if not values:
    return jnp.zeros((batch_size, 0), jnp.float32)
  return jnp.stack(values, axis=1)
