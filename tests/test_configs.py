"""Every experiment config documents itself, validates, and builds the network it names; the
layers (common, family bases) hold the shared fields."""

import importlib
import pathlib

import flax.traverse_util
import jax
import jax.numpy as jnp
import pytest

from configs import common
from lpta import evaluators
from lpta import families
from lpta import objectives
from lpta import train

CONFIG_DIR = pathlib.Path(__file__).parent.parent / 'configs'
# The layers every experiment builds on; they are not experiments themselves.
LAYERS = ('__init__', 'common', 'ltpa', 'attention_transfer', 'ram')
EXPERIMENTS = sorted(p.stem for p in CONFIG_DIR.glob('*.py') if p.stem not in LAYERS)
# Parameter counts stated in the configs' docstrings (counted from the original code's layer lists),
# CIFAR-100 unless noted.
EXPECTED_PARAMETERS = {
    'cifar100_att3': 19_971_751,
    'cifar100_att3_before': 19_993_764,
    'cifar100_att3_after': 19_993_764,
    'cifar10_att3': 19_856_461,
    'cifar10_wrn': 175_066,
    'imagenet_resnet': 11_689_512,
}


def _config(name):
  return importlib.import_module(f'configs.{name}').get_config()


def test_all_issue_configs_exist():
  assert {'cifar100_att3', 'cifar100_att3_before', 'cifar100_att3_after', 'cifar100_att2',
          'cifar10_att2', 'cifar10_att3', 'svhn_att3', 'cifar100_vgg', 'quickstart',
          'cifar10_wrn', 'cifar10_at', 'cifar100_at', 'fashion_mnist_wrn',
          'fashion_mnist_at', 'imagenet_resnet18_at'} <= set(EXPERIMENTS)


@pytest.mark.parametrize('name', EXPERIMENTS)
def test_config_docstring_gives_command_and_target(name):
  doc = importlib.import_module(f'configs.{name}').__doc__
  assert f'python main.py --config=configs/{name}.py' in doc
  assert 'Published:' in doc or 'Expected:' in doc


@pytest.mark.parametrize('name', EXPERIMENTS)
def test_config_validates_and_builds_its_network(name):
  config = _config(name)
  if objectives.needs_teacher(config.transfer):
    config.teacher.workdir = 'runs/teacher'  # what the docstring's command sets
  family, source = train.validate_config(config, num_devices=1)
  image_shape, num_classes = source.image_shape, source.num_classes
  model = family.build(num_classes, families.compute_dtype(config.half_precision))
  variables, _ = families.abstract_variables_and_outputs(model, image_shape)
  count = families.count_parameters(variables['params'])
  if name in EXPECTED_PARAMETERS:
    assert count == EXPECTED_PARAMETERS[name]
    assert f'{count:,}' in importlib.import_module(f'configs.{name}').__doc__


@pytest.mark.parametrize('name', EXPERIMENTS)
def test_every_experiment_has_exactly_the_common_fields_outside_its_model(name):
  experiment = _config(name)
  config, base = experiment.to_dict(), common.get_config().to_dict()
  # The model, and the optimiser overrides of its parameter groups, are the family's; the
  # evaluators a run schedules are the evaluators' (checked by lpta.evaluators.scheduled).
  for tree in (config, base):
    del tree['model'], tree['optimizer']['groups'], tree['evals']
  assert _field_names(config) == _field_names(base)
  assert len(evaluators.scheduled(experiment.evals)) == len(experiment.evals)


def _field_names(tree, prefix=''):
  names = set()
  for key, value in tree.items():
    names |= _field_names(value, f'{prefix}{key}.') if isinstance(value, dict) else {prefix + key}
  return names


@pytest.mark.parametrize('name', ['cifar100_att3', 'cifar10_wrn', 'svhn_att3', 'cifar100_vgg'])
def test_paper_configs_keep_the_papers_protocol_and_say_so(name):
  assert _config(name).data.validation_split == 0
  doc = importlib.import_module(f'configs.{name}').__doc__
  assert 'reports the final test accuracy' in doc


@pytest.mark.parametrize('cub_name, cifar_name', [('cub_att2', 'cifar100_att2'),
                                                  ('cub_att3', 'cifar100_att3'),
                                                  ('cub_vgg', 'cifar100_vgg')])
def test_cub_networks_hold_their_cifar_run_but_the_classifier(cub_name, cifar_name):
  # The 5×5 first pool brings 80×80 crops to the 32×32 network's sizes (the official
  # VGGNet/models/models_CUBS200/2_level_atten_1global/1.1_vgg_local.lua), so
  # fine-tuning loads every CIFAR-100 array: same paths and shapes but the 200-way classifier.
  shapes = []
  for name in (cub_name, cifar_name):
    config = _config(name)
    family, source = train.validate_config(config, num_devices=1)
    variables, (_, aux) = families.abstract_variables_and_outputs(
        family.build(source.num_classes, jnp.float32), source.image_shape)
    shapes.append(flax.traverse_util.flatten_dict(
        jax.tree.map(lambda x: x.shape, dict(variables)), sep='/'))
    if name == cub_name:
      assert source.image_shape == (80, 80, 3)
      assert [m.shape[1:] for m in aux['attention_maps']] == {
          'cub_att2': [(16, 16), (8, 8)], 'cub_att3': [(80, 80), (16, 16), (8, 8)],
          'cub_vgg': []}[cub_name]
  cub, cifar = shapes
  assert cub.keys() == cifar.keys()
  assert {path for path in cub if cub[path] != cifar[path]} == {
      'params/classifier/kernel', 'params/classifier/bias'}
  assert cub['params/classifier/bias'] == (200,) and cifar['params/classifier/bias'] == (100,)
