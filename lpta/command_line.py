"""What the command-line programs (main.py, lpta.predict, lpta.evaluate, lpta.benchmark,
lpta.import_weights) share: a short --help that exits 0, flags parsed with every user error told
in one line (a config file that cannot be loaded or overridden included), and a quiet log.

absl's own --help prints the main module's docstring and every flag of the module, then exits
with status 1 (absl.app.HelpFlag); the programs answer it themselves, before absl parses.
"""

import ast
from collections.abc import Callable, Sequence
import functools
import logging as python_logging
import os
import re
import sys
import textwrap
import traceback

from absl import flags
from absl import logging

from lpta.errors import LptaError

# Libraries whose INFO lines (several per checkpoint for Orbax, several per data set read for
# TFDS) stay out of the log; their warnings and errors are kept.
QUIET_LIBRARIES = ('/orbax/', '/jax/_src/', '/tensorflow_datasets/')
# Library warnings that only restate what lpta asked for: Orbax warns whenever a checkpoint
# directory is opened read-only, as load_run and the resume check do on purpose.
EXPECTED_WARNINGS = ('Given directory is read only',)
# Arguments that ask for the usage text (absl's help flags and the usual short ones).
HELP_ARGUMENTS = ('--help', '-help', '--helpshort', '--helpfull', '-h', '-?')
STEP_HELP = "Checkpoint to use: 'latest', 'best' or a step number."
_WIDTH = 100
_FLAG_COLUMN = 24


def drop_library_info(record: python_logging.LogRecord) -> bool:
  """A logging filter: False for an INFO (or lower) record from one of QUIET_LIBRARIES, and
  for a warning that starts with one of EXPECTED_WARNINGS."""
  if record.getMessage().startswith(EXPECTED_WARNINGS):
    return False
  return (record.levelno >= python_logging.WARNING
          or not any(library in record.pathname for library in QUIET_LIBRARIES))


def quiet_library_info() -> None:
  """Drops the INFO lines of QUIET_LIBRARIES from absl's log (call it in main)."""
  logging.get_absl_handler().addFilter(drop_library_info)


def usage(synopsis: str, summary: str, examples: Sequence[str], flag_names: Sequence[str],
          *sections: str) -> str:
  """The --help text: synopsis, what the command does, example commands, its flags (help and
  default of each, as defined), then any further `sections` (each a paragraph or a block)."""
  wrap = functools.partial(textwrap.fill, width=_WIDTH)
  lines = [textwrap.fill(f'usage: {synopsis}', width=_WIDTH, subsequent_indent=' ' * 7,
                         break_long_words=False, break_on_hyphens=False),
           '', wrap(' '.join(summary.split())), '', 'Examples:']
  lines += [f'  {example}' for example in examples]
  rows = []
  for name in flag_names:
    flag = flags.FLAGS[name]
    text = ' '.join(flag.help.split())
    if flag.default not in (None, '') and not isinstance(flag.default, bool):
      text += f' Default: {flag.default}.'
    rows.append((f'--{name}', text))
  lines += ['', 'Flags:', table(rows, _FLAG_COLUMN)]
  for section in sections:
    lines += ['', section]
  return '\n'.join(lines)


def table(rows: Sequence[tuple[str, str]], column: int | None = None) -> str:
  """Two columns, indented by two spaces: each name, then its text wrapped from `column` on
  (default: just after the longest name); a name too long for the column has its own line."""
  column = column or 4 + max((len(name) for name, _ in rows), default=0)
  lines = []
  for name, text in rows:
    head = f'  {name} '.ljust(column)
    if len(head) > column:
      lines.append(head.rstrip())
      head = ' ' * column
    lines.append(textwrap.fill(text, width=_WIDTH, initial_indent=head,
                               subsequent_indent=' ' * column))
  return '\n'.join(lines)


def exit_if_help(argv: Sequence[str], usage_text: str) -> None:
  """Prints `usage_text` to stdout and exits 0 when `argv` asks for help."""
  if any(arg in HELP_ARGUMENTS for arg in argv[1:]):
    print(usage_text)
    sys.exit(0)


def first_line(error: BaseException) -> str:
  return (str(error).strip().splitlines() or [''])[0]


def _chain(error: BaseException) -> list[BaseException]:
  """`error` and the exceptions that led to it (its __cause__ or __context__), outermost first."""
  chain = [error]
  while (chain[-1].__cause__ or chain[-1].__context__) is not None:
    chain.append(chain[-1].__cause__ or chain[-1].__context__)
  return chain


def _raised_in(error: BaseException, path: str) -> bool:
  """Whether `error` came from the file `path`: a frame of its traceback is there, or it is a
  SyntaxError in it."""
  target = os.path.abspath(path)
  if isinstance(error, SyntaxError):
    return os.path.abspath(error.filename or '') == target
  return any(os.path.abspath(frame.filename) == target
             for frame in traceback.extract_tb(error.__traceback__))


def config_error(error: Exception, argv: Sequence[str], name: str = 'config') -> str:
  """One line on why --NAME (a config file) or a --NAME.* override could not be applied."""
  value = next((arg.split('=', 1)[1] for arg in argv if arg.startswith(f'--{name}=')), '')
  path = value.split(':')[0]
  if path and not os.path.isfile(path):
    return (f'--{name}={path}: no such file (looked for from {os.getcwd()}); pass a config '
            'file, e.g. --config=configs/quickstart.py.')
  own = [link for link in _chain(error) if path and _raised_in(link, path)]
  if own:
    # The config file itself failed (get_config refused its argument, or has a bug): its
    # exception says what is wrong. A ValueError or LptaError is a message to the user.
    message = first_line(own[-1])
    if not isinstance(own[-1], (ValueError, LptaError)):
      message = f'{type(own[-1]).__name__} in the config file: {message}'
    return f'--{name}={value}: {message}'
  text = str(error)
  overrides = [arg.split('=', 1)[0] for arg in argv if arg.startswith(f'--{name}.')]
  culprit = next((arg for arg in overrides
                  if any(re.search(rf'\b{re.escape(part)}\b', text)
                         for part in arg.split('.')[1:])), None)
  if isinstance(error, (AttributeError, KeyError)) and culprit:
    suggestion = re.search(r'Did you mean "(\w+)"', text)
    hint = f' (did you mean {suggestion.group(1)}?)' if suggestion else ''
    return (f'{culprit} is not a field of the config{hint}; check its spelling against the '
            'config file (docs/architecture.md says where each field is declared).')
  return f'cannot apply the config flags ({type(error).__name__}: {first_line(error)}).'


def parse_flags(argv: Sequence[str], usage_text: str, config=None, missing_config: str = ''):
  """absl's parsing of `argv` for a command, with --help answered by `usage_text` (exit 0) and
  every failure told in one line: a bad flag, and for `config` (a config_flags holder) a config
  file that is not given (`missing_config` says how to give one), cannot load or whose
  overrides cannot apply. Returns the remaining arguments."""
  exit_if_help(argv, usage_text)
  try:
    remaining = flags.FLAGS(argv)
    if config is not None:
      if config.value is None:
        sys.exit(f'error: {missing_config}')
      config.value.get('seed')  # a config file that failed to load raises only when used
  except flags.Error as error:
    if config is not None and str(error).startswith(f'flag --{config.name}='):
      sys.exit(f'error: {config_error(error, argv, config.name)}')
    sys.exit(f'error: {first_line(error)}')
  except Exception as error:  # pylint: disable=broad-except
    if config is None:
      raise
    sys.exit(f'error: {config_error(error, argv, config.name)}')
  return remaining


def flags_parser(usage_text: str, config=None, missing_config: str = '') -> Callable:
  """parse_flags for absl.app.run(main, flags_parser=...)."""
  return functools.partial(parse_flags, usage_text=usage_text, config=config,
                           missing_config=missing_config)


def refuse_arguments(argv: Sequence[str], command: str) -> None:
  """Exits with one line when `argv` holds more than the program name (a command that takes
  only flags)."""
  if len(argv) > 1:
    sys.exit(f'error: unexpected arguments {" ".join(argv[1:])}; {command} takes only flags '
             f'(--flag=value), listed by {command} --help.')


def checkpoint_step(value: str) -> str | int:
  """--step's value as lpta.load_run takes it; exits with one line unless it is 'latest',
  'best' or a step number."""
  if value in ('latest', 'best'):
    return value
  if re.fullmatch('[0-9]+', value):
    return int(value)
  sys.exit(f'error: --step={value} is not a checkpoint; use --step=latest, --step=best or a '
           'step number, e.g. --step=1000.')


# A config is runnable when its docstring has a "Command:" (or "Commands ...:") section.
_COMMAND_SECTION = re.compile(r'^Commands?\b[^\n]*:$', re.M)


def runnable_configs(folder: str) -> list[tuple[str, str]]:
  """(file name, one-line summary) of each config in `folder` that can be run: its docstring
  has a Command(s) section; bases ("Not meant to be run directly") have none. The summary is
  the docstring's first paragraph on one line. The files are read, not imported."""
  listed = []
  for name in sorted(os.listdir(folder)):
    if not name.endswith('.py'):
      continue
    with open(os.path.join(folder, name), encoding='utf-8') as file:
      docstring = ast.get_docstring(ast.parse(file.read())) or ''
    if _COMMAND_SECTION.search(docstring) and 'Not meant to be run directly' not in docstring:
      listed.append((name, ' '.join(docstring.split('\n\n')[0].split())))
  return listed


def default_workdir(config_argument: str) -> str:
  """runs/<config file name>, followed by the config's argument (after ':') if it has one, so
  that each argument of a config trains in its own workdir:
  configs/canvas_baseline.py:cluttered,cnn -> runs/canvas_baseline_cluttered_cnn."""
  path, _, argument = config_argument.partition(':')
  name = os.path.splitext(os.path.basename(path))[0]
  suffix = re.sub(r'[^A-Za-z0-9.=-]+', '_', argument).strip('_')
  return os.path.join('runs', f'{name}_{suffix}' if suffix else name)
