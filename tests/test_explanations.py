"""lpta.evaluators.explanations: one report that runs every scoring evaluator on the same maps."""

import json

import pytest

from lpta import evaluators
from lpta.errors import ConfigError
from lpta.evaluators import explanations
from test_faithfulness import TinyConvNet
from test_faithfulness import _synthetic_data_config
from toy_runs import toy_run


def _run(tmp_path, maps='map'):
  return toy_run(TinyConvNet(num_classes=3), (8, 8, 3), 3, tmp_path, maps=maps,
                 feature_layer='conv', data_config=_synthetic_data_config())


def test_the_kinds_of_a_run_are_those_its_maps_can_be_made_of(tmp_path):
  config = explanations.Explanations.default_config()
  with_attention = explanations.kinds_of(_run(tmp_path / 'a'), config)
  without = explanations.kinds_of(_run(tmp_path / 'b', maps=None), config)
  assert with_attention == explanations.maps.KINDS
  assert without == tuple(kind for kind in explanations.maps.KINDS if kind != 'attention')


def test_the_report_holds_each_evaluator_s_own_results_on_the_same_settings(tmp_path):
  run = _run(tmp_path)
  config = explanations.Explanations.default_config()
  config.update(maps=('attention', 'gradient'), batch_size=4, randomisation_examples=3,
                figure_examples=2, target='label')
  results = evaluators.evaluate_run(run, 'explanations', config)
  for name in explanations.SCORES:
    with open(tmp_path / 'eval' / name / 'results.json') as file:
      record = json.load(file)
    # Each evaluator ran with the report's kinds and target, and wrote what it would alone.
    assert tuple(record['config']['maps']) == ('attention', 'gradient')
    assert record['config']['target'] == 'label'
    assert {f'{name}/{key}': value for key, value in record['results'].items()} == {
        key: value for key, value in results.items() if key.startswith(f'{name}/')}
  with open(tmp_path / 'eval' / 'parameter_randomisation' / 'results.json') as file:
    record = json.load(file)
  assert record['config']['max_examples'] == 3 and record['config']['modes'] == ['cascading']
  assert sum(key.startswith('parameter_randomisation/independent') for key in results) == 0
  for title, key in explanations.HEADLINES:  # every cell of the table has its number
    for kind in ('attention', 'gradient'):
      assert key.format(kind=kind) in results, title
  with open(tmp_path / 'eval' / 'explanations' / 'explanations.png', 'rb') as file:
    assert file.read(8) == b'\x89PNG\r\n\x1a\n'


def test_invalid_maps_are_refused_in_one_line():
  config = explanations.Explanations.default_config()
  config.maps = ('gradcam', 'gradcam')
  with pytest.raises(ConfigError, match='--eval.maps=') as error:
    explanations.Explanations(config)
  assert '\n' not in str(error.value)
