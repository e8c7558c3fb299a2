"""The fields every lpta run has, at their defaults. Not meant to be run directly.

Each field is declared once, with its meaning and check, beside the code that reads it
(lpta.train.FIELDS, lpta.data, lpta.optimizers, lpta.objectives, lpta.fine_tuning; config.model
by its family in lpta/families/). The family bases build on this: configs/ltpa.py (Learn To Pay
Attention), configs/attention_transfer.py (wide and ImageNet ResNets) and configs/ram.py
(glimpse models); they set the model and the paper's recipe, and each experiment config changes
what differs. Override any field from the command line, e.g. `--config.num_epochs=10`.
"""

import ml_collections

from lpta import train

placeholder = ml_collections.config_dict.placeholder


def get_config() -> ml_collections.ConfigDict:
  return train.default_config()
