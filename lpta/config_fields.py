"""Config fields, declared once: name, default, meaning and check, beside the code that reads them.

Every part of a run's config is a tuple of `Field`s declared by the module that uses it:
  config.model      its family (lpta/families/, `Family.fields`, one tuple per model name),
  config.data       lpta.data (the fields every data set has) and each source for its own,
  config.optimizer  lpta.optimizers; config.transfer and config.teacher lpta.objectives;
  config.init_from  lpta.fine_tuning; the top-level fields (seed, batch_size, ...) lpta.train.
From the declarations come
  - the defaults that the config files start from (`default_config`; configs/common.py),
  - the checks, with one message format (`validated`: "config.<part>.<name>=<value> must be
    <what>"), and
  - the value a field has in configs saved before it existed (`Field.added`), which resumed
    runs, loaded runs and the resume check read (`added_values`).
So a new model field is one `Field` in its family's file, and its module reads it.
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
import dataclasses
from typing import Any

import ml_collections

from lpta.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Check:
  """What a valid value is: `accepts(value)`, and `refusal`, the words after
  'config.<part>.<name>=<value> ' when it does not (e.g. 'must be a positive integer')."""
  refusal: str
  accepts: Callable[[Any], bool]


def _is_integer(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


BOOLEAN = Check('must be True or False', lambda value: isinstance(value, bool))
POSITIVE_INTEGER = Check('must be a positive integer', lambda v: _is_integer(v) and v >= 1)
POSITIVE_NUMBER = Check('must be positive', lambda value: _is_number(value) and value > 0)
STRING = Check('must be a string', lambda value: isinstance(value, str))


def integer(minimum: int) -> Check:
  return Check(f'must be an integer >= {minimum}', lambda v: _is_integer(v) and v >= minimum)


def number(minimum: float, maximum: float | None = None, *, below: float | None = None) -> Check:
  """A number >= minimum, and <= maximum or < below when given."""
  if below is not None:
    return Check(f'must be a number in [{minimum}, {below})',
                 lambda v: _is_number(v) and minimum <= v < below)
  if maximum is not None:
    return Check(f'must be a number in [{minimum}, {maximum}]',
                 lambda v: _is_number(v) and minimum <= v <= maximum)
  return Check(f'must be a number >= {minimum}', lambda v: _is_number(v) and v >= minimum)


def one_of(choices: Sequence[Any], what: str = 'valid') -> Check:
  """One of `choices`; refused as 'is not <what>; use one of a, b'."""
  shown = ', '.join(map(str, choices))
  return Check(f'is not {what}; use one of {shown}', lambda value: value in tuple(choices))


def tuple_of(element: Check, words: str, length: int | None = None) -> Check:
  """A tuple (or list) of values that `element` accepts, of `length` if given; `words` name
  them in the refusal, e.g. 'positive integers, e.g. (256, 256)'."""
  count = f'{length} ' if length else ''
  return Check(f'must be a tuple of {count}{words}',
               lambda value: (isinstance(value, (tuple, list)) and all(map(element.accepts, value))
                              and (length is None or len(value) == length)))


def optional(check: Check) -> Check:
  """None, or a value `check` accepts."""
  return Check(f'{check.refusal}, or None', lambda value: value is None or check.accepts(value))


_NOT_ADDED = object()


@dataclasses.dataclass(frozen=True)
class Field:
  """One config field.

  Attributes:
    name: the field's key in its part of the config.
    default: its value in a new config.
    help: what it means (one sentence, units and choices included).
    check: what a valid value is (None: any value).
    hint: appended to a refusal, e.g. '(1.0 is the paper network)'.
    kind: the type of a field whose default is None (what `--config.x=...` parses).
    added: the value of runs whose configs were saved before the field existed.
  """
  name: str
  default: Any
  help: str
  check: Check | None = None
  hint: str = ''
  kind: type | None = None
  added: Any = _NOT_ADDED

  @property
  def was_added(self) -> bool:
    return self.added is not _NOT_ADDED


def with_defaults(fields: Iterable[Field], **defaults) -> tuple[Field, ...]:
  """`fields` with other defaults for some of them, e.g. max_examples=500."""
  return tuple(dataclasses.replace(field, default=defaults[field.name])
               if field.name in defaults else field for field in fields)


def default_config(fields: Iterable[Field], **preset) -> ml_collections.ConfigDict:
  """A ConfigDict of the fields' defaults (None defaults as placeholders of their `kind`),
  after the `preset` entries (e.g. name='attention_vgg')."""
  config = ml_collections.ConfigDict(preset)
  for field in fields:
    if field.default is None:
      config[field.name] = ml_collections.config_dict.placeholder(field.kind or str)
    else:
      config[field.name] = field.default
  return config


def validated(config: ml_collections.ConfigDict, fields: Iterable[Field], part: str,
              owner: str | None = None) -> ml_collections.ConfigDict:
  """A copy of `config` (the part `part` of a run's config, e.g. 'config.model') in which each
  field of `fields` that a config saved before the field existed lacks has `Field.added`.

  Raises:
    ConfigError: a field that is missing (naming `owner`, e.g. "config.model.name='vgg'", that
      needs it) or whose value its check refuses.
  """
  fields = tuple(fields)
  missing = [f'{part}.{field.name}' for field in fields
             if field.name not in config and not field.was_added]
  if missing:
    raise ConfigError(f'{owner or part} needs {", ".join(missing)}, which the config does not '
                      f'set; add {"it" if len(missing) == 1 else "them"} to the config.')
  completed = ml_collections.ConfigDict(config.to_dict())
  for field in fields:
    if field.name not in completed:
      completed[field.name] = field.added
    value = completed[field.name]
    if field.check is not None and not field.check.accepts(value):
      hint = f' {field.hint}' if field.hint else ''
      raise ConfigError(f'{part}.{field.name}={value!r} {field.check.refusal}{hint}.')
  return completed


def added_values(part: str, fields: Iterable[Field]) -> dict[str, Any]:
  """{'<part>.<name>': Field.added} of the fields added after runs were saved without them;
  `part` without 'config.' (e.g. 'model')."""
  return {f'{part}.{field.name}': field.added for field in fields if field.was_added}


def merge_added(*tables: Mapping[str, Any]) -> dict[str, Any]:
  """One table of added values; ValueError if two declarations of a field disagree."""
  merged = {}
  for table in tables:
    for key, value in table.items():
      if key in merged and merged[key] != value:
        raise ValueError(f'{key} is declared as added with {merged[key]!r} and {value!r}.')
      merged[key] = value
  return merged
