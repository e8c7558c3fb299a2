"""The fine-grained glimpse model: regions and locations by hand, and a pretrained trunk that stays
frozen through training."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import stanford_dogs_glimpse
from configs import stanford_dogs_glimpse_trunk
from lpta import families
from lpta import train
from lpta.errors import CheckpointError, ConfigError
from lpta.models import fine_grained
from test_train import tree_equal


def test_quadrant_regions_average_each_quarter_in_reading_order():
  feature_map = jnp.arange(16.).reshape(1, 4, 4, 1)
  # TL: 0 1 4 5, TR: 2 3 6 7, BL: 8 9 12 13, BR: 10 11 14 15.
  np.testing.assert_array_equal(fine_grained.quadrant_regions(feature_map)[0, :, 0],
                                [2.5, 4.5, 10.5, 12.5])


@pytest.mark.parametrize('region, expected', [(0, (-1, -1)), (1, (1, -1)), (2, (-1, 1)),
                                              (3, (1, 1))])
def test_attending_to_one_region_puts_the_mean_at_its_corner_with_y_downwards(region, expected):
  probabilities = jax.nn.one_hot(jnp.array([region]), 4)
  np.testing.assert_array_equal(fine_grained.mean_location(probabilities)[0], expected)
  np.testing.assert_array_equal(fine_grained.mean_location(jnp.full((1, 4), 0.25))[0], (0, 0))


def test_glimpse_sides_follow_the_start_size_and_double():
  assert fine_grained.glimpse_sides(224, start_size=1, num_resolutions=3) == (56, 112, 224)


def tiny_configs(tmp_path, **glimpse_overrides):
  """(pretraining, glimpse) configs: a small-CNN trunk on 32×32 synthetic images, 4 steps."""
  trunk = stanford_dogs_glimpse_trunk.get_config()
  glimpse = stanford_dogs_glimpse.get_config()
  for config in (trunk, glimpse):
    config.data.name = 'synthetic'
    config.data.image_size = None
    config.data.synthetic_image_shape = (32, 32, 3)
    config.data.synthetic_num_classes = 5
    config.data.synthetic_num_train, config.data.synthetic_num_test = 40, 8
    config.data.validation_split = 8
    config.model.update(trunk='small_cnn', small_trunk_widths=(4, 8), glimpse_size=8)
    config.batch_size, config.eval_batch_size, config.num_epochs = 8, 8, 1
    config.optimizer.update(name='sgd', learning_rate=0.1, weight_decay=0.01)
    config.log_every_steps = 2
  trunk.model.head_units = 8
  glimpse.model.update(hidden_units=8, attention_units=4, eval_samples=2)
  glimpse.init_from.workdir = str(tmp_path / 'trunk')
  glimpse.num_attention_images = 2
  glimpse.update_from_flattened_dict(glimpse_overrides)
  return trunk, glimpse


def test_a_pretrained_frozen_trunk_is_loaded_and_never_changes(tmp_path):
  trunk_config, glimpse_config = tiny_configs(tmp_path)
  pretrained, _ = train.train_and_evaluate(trunk_config, tmp_path / 'trunk')
  state, metrics = train.train_and_evaluate(glimpse_config, tmp_path / 'glimpse')

  # Four steps of SGD with momentum and weight decay left the trunk and its BatchNorm
  # statistics exactly as pretrained, and trained everything else.
  assert tree_equal(state.params['trunk'], pretrained.params['trunk'])
  assert tree_equal(state.batch_stats['trunk'], pretrained.batch_stats['trunk'])
  initial = families.get(glimpse_config.model).build(5, jnp.float32).init(
      {'params': jax.random.key(0), 'location': jax.random.key(1)},
      jnp.zeros((1, 32, 32, 3)), train=False)['params']
  assert not tree_equal(state.params['trunk'], initial['trunk'])
  assert not tree_equal(state.params['core'], initial['core'])
  assert {'test_accuracy', 'test_sampled_accuracy'} <= set(metrics)
  assert (tmp_path / 'glimpse' / 'attention' / 'step_00000004.png').exists()


def test_a_trunk_that_is_not_frozen_trains(tmp_path):
  trunk_config, glimpse_config = tiny_configs(tmp_path, **{'model.trunk_frozen': False})
  pretrained, _ = train.train_and_evaluate(trunk_config, tmp_path / 'trunk')
  state, _ = train.train_and_evaluate(glimpse_config, tmp_path / 'glimpse')
  assert not tree_equal(state.params['trunk'], pretrained.params['trunk'])


def test_a_trunk_of_other_shapes_or_another_model_is_refused(tmp_path):
  trunk_config, glimpse_config = tiny_configs(tmp_path)
  trunk_config.model.small_trunk_widths = (4, 4)
  train.train_and_evaluate(trunk_config, tmp_path / 'trunk')
  # The second layer of the pretrained trunk has 4 channels, the glimpse model's 8.
  with pytest.raises(CheckpointError, match=r'config.init_from: params/trunk/bn1/bias has shape '
                                            r'\(4,\) in .* and \(8,\) in this model'):
    train.train_and_evaluate(glimpse_config, tmp_path / 'glimpse')
  assert not list((tmp_path / 'glimpse' / 'checkpoints').iterdir())  # nothing was trained


def test_pretraining_heads_read_their_resolutions_and_report_the_three_resolution_head(
    tmp_path):
  trunk_config, _ = tiny_configs(tmp_path)
  family = families.get(trunk_config.model)
  model = family.build(5, jnp.float32)
  variables = model.init(jax.random.key(0), jnp.zeros((2, 32, 32, 3)), train=False)
  images = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
  logits, aux = model.apply(variables, images, train=False)
  assert len(aux['head_logits']) == 4
  np.testing.assert_array_equal(logits, aux['head_logits'][-1])
  # The three-resolution head reads 3 × 8 trunk features, the others 2 × 8.
  widths = [variables['params'][f'head{i}_hidden']['kernel'].shape[0] for i in range(4)]
  assert widths == [16, 16, 16, 24]


def test_a_glimpse_size_the_trunk_cannot_split_into_quadrants_is_refused(tmp_path):
  _, glimpse_config = tiny_configs(tmp_path, **{'model.glimpse_size': 12})
  with pytest.raises(ConfigError, match='glimpse_size=12 must be a multiple of 8'):
    families.get(glimpse_config.model)


def test_the_pretraining_loss_is_the_sum_of_the_heads_cross_entropies():
  from lpta import objectives  # pylint: disable=g-import-not-at-top
  from lpta.families import fine_grained as family  # pylint: disable=g-import-not-at-top
  heads = tuple(jax.random.normal(jax.random.key(i), (3, 5)) for i in range(4))
  labels = jnp.array([0, 4, 2])
  student = objectives.Student(logits=heads[-1], aux={'head_logits': heads}, transfer_points=(),
                               pixels=None, labels=labels, step=0, num_train_steps=1,
                               inference_loss=None)
  loss, terms = family.HeadsCrossEntropy()(student, {})
  expected = [float(objectives.cross_entropy(h, labels).mean()) for h in heads]
  np.testing.assert_allclose([terms[f'head{i}_loss'] for i in range(4)], expected, rtol=1e-6)
  np.testing.assert_allclose(loss, sum(expected), rtol=1e-6)
