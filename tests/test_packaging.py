"""Packaging: pyproject.toml declares what lpta imports, the lock pins it, one version everywhere.

* Every third-party module that lpta/ (or main.py) imports, at the top of a module or inside a
  function, is a dependency of pyproject.toml or of one of its extras; the same for tests/ (the
  `test` extra). The source is parsed with `ast`, nothing is imported.
* Every dependency (extras included) is pinned in the lock (requirements.txt,
  requirements-torch.txt and requirements-captum.txt), at a version that satisfies it, and the
  lock is closed: what the locked packages require is locked too.
* The version that setuptools resolves from pyproject.toml (dynamic, attr lpta.__version__) is
  lpta.__version__, read from the source without importing lpta or JAX.
* LICENSE (Apache-2.0) and CITATION.cff exist, and CITATION.cff's version is lpta.__version__.
"""

import ast
import importlib.metadata
import os
import pathlib
import re
import subprocess
import sys
import tomllib

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
import pytest

import lpta

ROOT = pathlib.Path(__file__).resolve().parent.parent
LOCK_FILES = ('requirements.txt', 'requirements-torch.txt', 'requirements-captum.txt')
# The platform that the lock was made on (requirements.txt says so): markers are evaluated there.
LOCK_ENVIRONMENT = dict(default_environment(), sys_platform='linux', platform_system='Linux',
                        platform_machine='x86_64', os_name='posix', python_version='3.11',
                        implementation_name='cpython', platform_python_implementation='CPython')

# Import names whose distribution is not the import name itself (after PEP 503 normalisation:
# ml_collections -> ml-collections, tensorflow_datasets -> tensorflow-datasets). A dotted key is a
# module inside a namespace package; the longest one that matches wins. A module listed with
# several distributions is declared when any of them is.
DISTRIBUTIONS = {
    'PIL': {'pillow'},
    'absl': {'absl-py'},
    'cv2': {'opencv-python-headless', 'opencv-python'},
    'google.cloud.storage': {'google-cloud-storage'},
    'orbax': {'orbax-checkpoint'},
    'sklearn': {'scikit-learn'},
    'skimage': {'scikit-image'},
    'tensorflow': {'tensorflow', 'tensorflow-cpu'},
    'yaml': {'pyyaml'},
}


def _pyproject() -> dict:
  return tomllib.loads((ROOT / 'pyproject.toml').read_text())


def _requirements(with_self: bool = False) -> list[Requirement]:
  """Every requirement of pyproject.toml: dependencies and all extras."""
  project = _pyproject()['project']
  requirements = [Requirement(r) for r in project['dependencies']]
  for extra in project.get('optional-dependencies', {}).values():
    requirements += [Requirement(r) for r in extra]
  return [r for r in requirements if with_self or canonicalize_name(r.name) != 'lpta']


def _declared() -> set[str]:
  return {canonicalize_name(r.name) for r in _requirements()}


def _imported_modules(paths) -> dict[str, set[str]]:
  """{absolute module name: files} for every import statement (at any depth) in `paths`, and
  every importlib.import_module('literal') call."""
  modules = {}
  for path in paths:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
      names = []
      if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
      elif isinstance(node, ast.ImportFrom) and node.level == 0:
        names = [node.module]
      elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == 'import_module' and node.args
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
        names = [node.args[0].value]
      for name in names:
        modules.setdefault(name, set()).add(str(path.relative_to(ROOT)))
  return modules


def _distributions_of(module: str) -> set[str]:
  parts = module.split('.')
  for n in range(len(parts), 0, -1):
    if '.'.join(parts[:n]) in DISTRIBUTIONS:
      return DISTRIBUTIONS['.'.join(parts[:n])]
  return {canonicalize_name(parts[0])}


def _undeclared(paths, local: set[str]) -> dict[str, set[str]]:
  """{module: files} for the third-party modules imported in `paths` that pyproject.toml does
  not declare. `local`: top-level names that are the repository's own modules."""
  declared = _declared()
  undeclared = {}
  for module, files in _imported_modules(paths).items():
    top = module.split('.')[0]
    if top in sys.stdlib_module_names or top in local:
      continue
    if not _distributions_of(module) & declared:
      undeclared[module] = files
  return undeclared


def test_every_third_party_module_that_lpta_imports_is_declared():
  paths = sorted((ROOT / 'lpta').rglob('*.py')) + [ROOT / 'main.py']
  modules = _imported_modules(paths)
  # The scan sees the imports inside functions too (torch, sklearn, tensorflow are only there).
  assert {'jax', 'torch', 'sklearn', 'tensorflow'} <= {m.split('.')[0] for m in modules}
  assert _undeclared(paths, local={'lpta', 'configs'}) == {}


def test_every_third_party_module_that_the_tests_import_is_declared():
  paths = sorted((ROOT / 'tests').glob('*.py'))
  local = {'lpta', 'configs'} | {p.stem for p in paths}
  assert _undeclared(paths, local) == {}
  assert 'pytest' in {canonicalize_name(r) for r in _pyproject()['project'][
      'optional-dependencies']['test']}


def _lock() -> dict[str, str]:
  """{distribution: version} from the lock files: every line is `name==version` or a comment."""
  pins = {}
  for name in LOCK_FILES:
    for line in (ROOT / name).read_text().splitlines():
      line = line.split('#')[0].strip()
      if not line:
        continue
      match = re.fullmatch(r'([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)', line)
      assert match, f'{name}: not a pin: {line!r}'
      key = canonicalize_name(match[1])
      assert key not in pins, f'{match[1]} is pinned twice'
      pins[key] = match[2]
  return pins


def test_every_dependency_is_pinned_in_the_lock():
  pins = _lock()
  for requirement in _requirements():
    if requirement.marker and not requirement.marker.evaluate(LOCK_ENVIRONMENT):
      continue  # not installed on the lock's platform (tensorflow elsewhere than x86-64)
    name = canonicalize_name(requirement.name)
    assert name in pins, f'{requirement} is not pinned in {" or ".join(LOCK_FILES)}'
    assert requirement.specifier.contains(pins[name], prereleases=True), (
        f'{requirement}: the lock pins {pins[name]}')
  assert 'lpta' not in pins


def test_the_lock_is_closed_over_requirements():
  """What the locked packages require (their markers evaluated on the lock's platform, their
  extras followed) is locked too. It reads the installed packages' metadata, so it runs only in
  the locked environment (the one setup.sh makes)."""
  pins = _lock()
  installed = {canonicalize_name(d.metadata['Name']): d for d in importlib.metadata.distributions()}
  mismatched = sorted(n for n, v in pins.items() if n not in installed
                      or installed[n].version != v)
  if mismatched:
    pytest.skip(f'not the locked environment: {", ".join(mismatched[:5])} differ')
  missing = set()
  todo = [(r, 'pyproject.toml') for r in _requirements(with_self=True)
          if not r.marker or r.marker.evaluate(LOCK_ENVIRONMENT)]
  seen = set()
  while todo:
    requirement, wanted_by = todo.pop()
    name = canonicalize_name(requirement.name)
    if (name, frozenset(requirement.extras)) in seen:
      continue
    seen.add((name, frozenset(requirement.extras)))
    if name == 'lpta':  # lpta[gcs,torch] in the test extra
      extras = requirement.extras
      project = _pyproject()['project']['optional-dependencies']
      todo += [(Requirement(r), f'lpta[{e}]') for e in extras for r in project[e]
               if not Requirement(r).marker or Requirement(r).marker.evaluate(LOCK_ENVIRONMENT)]
      continue
    if name not in pins:
      missing.add(f'{requirement} (for {wanted_by})')
      continue
    for spec in installed[name].requires or []:
      dependency = Requirement(spec)
      if dependency.marker and not any(
          dependency.marker.evaluate(dict(LOCK_ENVIRONMENT, extra=extra))
          for extra in {''} | set(requirement.extras)):
        continue
      todo.append((dependency, name))
  assert not missing, f'required but not locked: {sorted(missing)}'


def test_version_is_lpta_version_and_is_read_without_importing_lpta():
  pyproject = _pyproject()
  assert 'version' not in pyproject['project']
  assert 'version' in pyproject['project']['dynamic']
  assert pyproject['tool']['setuptools']['dynamic']['version'] == {'attr': 'lpta.__version__'}
  # What setuptools does when it builds lpta, in a fresh interpreter: the version comes from
  # the source, statically; lpta (and with it JAX) is not imported.
  script = ('import sys\n'
            'from setuptools.config.expand import read_attr\n'
            'print(read_attr("lpta.__version__", root_dir="."))\n'
            'print(sorted(m for m in ("lpta", "jax", "jaxlib") if m in sys.modules))\n')
  env = dict(os.environ, PYTHONPATH='')
  out = subprocess.run([sys.executable, '-c', script], cwd=ROOT, env=env, check=True,
                       capture_output=True, text=True).stdout.splitlines()
  assert out == [lpta.__version__, '[]']
  assert re.fullmatch(r'\d+\.\d+\.\d+', lpta.__version__)


def test_license_and_citation():
  license_text = (ROOT / 'LICENSE').read_text()
  assert 'Apache License' in license_text and 'Version 2.0, January 2004' in license_text
  assert 'END OF TERMS AND CONDITIONS' in license_text
  assert _pyproject()['project']['license'] == 'Apache-2.0'
  citation = (ROOT / 'CITATION.cff').read_text()
  fields = dict(re.findall(r'^([a-z-]+): *"?([^"\n]*?)"? *$', citation, re.MULTILINE))
  assert fields['cff-version'] == '1.2.0'
  assert fields['version'] == lpta.__version__
  assert fields['license'] == 'Apache-2.0'
  # The papers: the same four in CITATION.cff and docs/papers.bib, by arXiv number.
  bib = (ROOT / 'docs' / 'papers.bib').read_text()
  arxiv = re.compile(r'\b(\d{4}\.\d{4,5})\b')
  assert len(re.findall(r'^@\w+\{', bib, re.MULTILINE)) == 4
  assert set(arxiv.findall(citation)) == set(arxiv.findall(bib)) == {
      '1804.02391', '1612.03928', '1406.6247', '1412.7054'}
