"""The README and docs/*.md: short front door, and every path, module and link they name exists.

What counts as a repository path. Text in inline code, fenced code blocks and link targets is
scanned. A path is the repository's when its first component is one of the repository's own
top-level entries, that is a first component of `git ls-files` (configs/, docs/, lpta/, tests/,
main.py, ...; files not yet added count too, unless git ignores them). Everything else is written
by a run or lives elsewhere, so it is not checked: workdirs and outputs (runs/..., predictions/..., <workdir>/..., gs://...), files of the upstream
repositories (model1.py, pretrain.py) and the user's own files (shirt.png, net.pth). A component
in angle brackets (`lpta/families/<family>.py`) is a placeholder: the folder before it must
exist. A `*` is a glob and must match at least one file. Module names (`python -m lpta.predict`,
`lpta.maps`, `lpta.load_run`) must be a module of the lpta package, optionally followed by a name
that the module defines or imports at its top level. Relative markdown links must resolve, with
their #anchor when they have one.
"""

import ast
import functools
import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
README_MAX_LINES = 250

# Internal notes that users do not have, and the short form ("seed" and a section sign) that cited
# one; built here so that this file does not contain them itself.
FORBIDDEN = tuple(a + b for a, b in (('seed', '-systems'), ('jax-', 'ecosystem.md'),
                                     ('performance', '-anchors'), ('glimpse-and', '-evaluation'),
                                     ('seed', ' §')))


@functools.lru_cache(maxsize=None)
def _tracked():
  """Files git tracks, and new files it would track (not ignored)."""
  out = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
                       cwd=ROOT, check=True, capture_output=True)
  return tuple(p for p in out.stdout.decode().split('\0') if p)


@functools.lru_cache(maxsize=None)
def _top_level():
  return frozenset(p.split('/', 1)[0] for p in _tracked())


def _documents():
  return [ROOT / 'README.md'] + sorted((ROOT / 'docs').glob('*.md'))


def _split_code(text):
  """(inline code spans and fenced blocks, the prose around them)."""
  code, prose = [], []
  fence = re.compile(r'^```.*?^```', re.S | re.M)
  last = 0
  for match in fence.finditer(text):
    prose.append(text[last:match.start()])
    code.append(match.group(0))
    last = match.end()
  prose.append(text[last:])
  rest = '\n'.join(prose)
  code += re.findall(r'`([^`\n]+)`', rest)
  return code, re.sub(r'`[^`\n]+`', ' ', rest)


_PATH = re.compile(r'(?<![\w.:/<>-])((?:\.?[\w<>*-]+/)*\.?[\w<>*-]+(?:\.[\w*]+)*/?)')
_LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)')
_MODULE = re.compile(r'(?<![\w./])(lpta(?:\.\w+)+)')


def _repository_paths(code):
  """Tokens in code that name a repository path (see the module docstring for the rule)."""
  found = set()
  for chunk in code:
    for token in _PATH.findall(chunk):
      first = token.split('/', 1)[0]
      if first in _top_level() and ('/' in token or '.' in token):
        found.add(token)
  return found


def _exists(path):
  parts = path.rstrip('/').split('/')
  for i, part in enumerate(parts):
    if '<' in part:
      return (ROOT.joinpath(*parts[:i])).is_dir()
  if '*' in path:
    return any(ROOT.glob(path.rstrip('/')))
  return (ROOT / path).exists()


def _module_file(dotted):
  base = ROOT.joinpath(*dotted.split('.'))
  for candidate in (base.with_suffix('.py'), base / '__init__.py'):
    if candidate.is_file():
      return candidate
  return None


@functools.lru_cache(maxsize=None)
def _top_level_names(path):
  tree = ast.parse(path.read_text())
  names = set()
  for node in tree.body:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
      names.add(node.name)
    elif isinstance(node, (ast.Assign, ast.AnnAssign)):
      targets = node.targets if isinstance(node, ast.Assign) else [node.target]
      for target in targets:
        names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
      names.update((a.asname or a.name).split('.')[0] for a in node.names)
    if isinstance(node, ast.FunctionDef) and node.name == '__getattr__':
      # A lazy attribute (PEP 562): the names the function compares with.
      names.update(n.value for n in ast.walk(node)
                   if isinstance(n, ast.Constant) and isinstance(n.value, str))
  return names


def _module_problem(dotted):
  """None if `dotted` is an lpta module, or a module and a name it defines; else what is wrong."""
  parts = dotted.split('.')
  for n in range(len(parts), 0, -1):
    path = _module_file('.'.join(parts[:n]))
    if path is None:
      continue
    if n == len(parts) or parts[n] in _top_level_names(path):
      return None
    return f'no module {".".join(parts[:n + 1])}, and {".".join(parts[:n])} defines no {parts[n]}'
  return 'no such module'


def _slug(heading):
  text = re.sub(r'[`*_]', '', heading.strip().lower())
  text = re.sub(r'[^\w\- ]', '', text)
  return text.replace(' ', '-')


def _anchors(path):
  seen, anchors = {}, set()
  text = re.sub(r'^```.*?^```', '', path.read_text(), flags=re.S | re.M)
  for heading in re.findall(r'^#+\s+(.*)$', text, re.M):
    slug = _slug(heading)
    count = seen.get(slug, 0)
    seen[slug] = count + 1
    anchors.add(slug if count == 0 else f'{slug}-{count}')
  return anchors


def test_readme_is_short():
  lines = (ROOT / 'README.md').read_text().count('\n')
  assert lines <= README_MAX_LINES, f'README.md has {lines} lines, at most {README_MAX_LINES}'


@pytest.mark.parametrize('document', _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_named_paths_exist(document):
  code, _ = _split_code(document.read_text())
  missing = sorted(p for p in _repository_paths(code) if not _exists(p))
  assert not missing, f'{document.name} names paths that do not exist: {missing}'


@pytest.mark.parametrize('document', _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_named_modules_exist(document):
  code, _ = _split_code(document.read_text())
  names = {m for chunk in code for m in _MODULE.findall(chunk)}
  problems = sorted(f'{m}: {p}' for m in names if (p := _module_problem(m)))
  assert not problems, f'{document.name} names modules that do not exist: {problems}'


@pytest.mark.parametrize('document', _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(document):
  _, prose = _split_code(document.read_text())
  broken = []
  for target in _LINK.findall(prose):
    if re.match(r'[a-z][a-z0-9+.-]*:', target):  # http:, https:, mailto:
      continue
    path, _, anchor = target.partition('#')
    resolved = (document.parent / path).resolve() if path else document
    if not resolved.exists():
      broken.append(target)
    elif anchor and resolved.suffix == '.md' and anchor not in _anchors(resolved):
      broken.append(target)
  assert not broken, f'{document.name} has links that do not resolve: {broken}'


def test_every_experiment_config_is_listed_in_the_readme():
  readme = (ROOT / 'README.md').read_text()
  experiments = [p for p in sorted((ROOT / 'configs').glob('*.py'))
                 if re.search(r'^Command', ast.get_docstring(ast.parse(p.read_text())) or '',
                              re.M)]
  assert experiments
  unlisted = [p.name for p in experiments if f'configs/{p.name}' not in readme]
  assert not unlisted, f'configs not listed in README.md: {unlisted}'


def test_no_tracked_file_cites_internal_notes():
  hits = []
  for name in _tracked():
    path = ROOT / name
    if not path.is_file():
      continue
    data = path.read_bytes()
    if b'\0' in data:  # binary: figures
      continue
    text = data.decode('utf-8', errors='replace')
    hits += [f'{name}: {word}' for word in FORBIDDEN if word in text]
  assert not hits, f'tracked files cite notes that users do not have: {hits}'


@pytest.mark.parametrize('document', _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_inline_code_stays_on_one_line(document):
  # The checks above read inline code line by line; a span across lines would hide its paths.
  fence = False
  odd = []
  for number, line in enumerate(document.read_text().splitlines(), 1):
    if line.startswith('```'):
      fence = not fence
    elif not fence and line.count('`') % 2:
      odd.append(number)
  assert not odd, f'{document.name}: inline code spans lines at {odd}'
