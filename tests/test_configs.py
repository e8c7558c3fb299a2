"""Every experiment config documents itself, validates, and builds the network it names."""

import importlib
import pathlib

import pytest

from lpta import input_pipeline
from lpta import models

CONFIG_DIR = pathlib.Path(__file__).parent.parent / 'configs'
EXPERIMENTS = sorted(p.stem for p in CONFIG_DIR.glob('*.py') if p.stem not in ('__init__',
                                                                                'default'))
# Parameter counts stated in the configs' docstrings (seed-systems §5), CIFAR-100 unless noted.
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
  models.validate(config.model)
  input_pipeline.validate_config(config.data)
  image_shape, num_classes = input_pipeline.image_shape_and_classes(config.data)
  model = models.create_model(config.model, num_classes, config.half_precision)
  variables, _ = models.abstract_variables_and_outputs(model, image_shape)
  count = models.count_parameters(variables['params'])
  if name in EXPECTED_PARAMETERS:
    assert count == EXPECTED_PARAMETERS[name]
    assert f'{count:,}' in importlib.import_module(f'configs.{name}').__doc__
