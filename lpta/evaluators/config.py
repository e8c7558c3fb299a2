"""The config of `python -m lpta.evaluate --eval=NAME[,NAME...]`: {name: that evaluator's
default config}, which `--eval.NAME.FIELD=VALUE` (or, with one evaluator, `--eval.FIELD=VALUE`)
overrides."""

import ml_collections

from lpta import evaluators


def get_config(names: str) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  for name in names.split(','):
    config[name] = evaluators.get_class(name).default_config()
  return config
