"""The import graph of lpta/ has no cycle.

Edges are the lpta modules each module imports, at the top or inside a function (a lazy import
hides a cycle from Python but not from a reader). One kind of edge is left out: a module's import
of a package it belongs to (lpta.families.ltpa importing lpta.families). Python initialises a
package before its modules, and the registries (lpta.families, lpta.data, lpta.evaluators) import
their built-in plug-ins at their end on purpose.
"""

import ast
import pathlib

LPTA = pathlib.Path(__file__).resolve().parent.parent / 'lpta'


def module_name(path: pathlib.Path, root: pathlib.Path) -> str:
  parts = list(path.relative_to(root.parent).with_suffix('').parts)
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def import_graph(root: pathlib.Path = LPTA) -> dict[str, set[str]]:
  """{module: the lpta modules it imports}, without imports of its own packages."""
  paths = {module_name(path, root): path for path in root.rglob('*.py')}
  graph = {}
  for module, path in paths.items():
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Import):
        imported.update(alias.name for alias in node.names)
      elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
        # `from lpta import train` imports the module lpta.train; `from lpta.x import y` the
        # module lpta.x (or lpta.x.y when that is a module).
        imported.update(f'{node.module}.{alias.name}' if f'{node.module}.{alias.name}' in paths
                        else node.module for alias in node.names)
    graph[module] = {name for name in imported
                     if name in paths and name != module and not module.startswith(name + '.')}
  return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """The strongly connected components of more than one module (Tarjan's algorithm)."""
  index, low, stack, on_stack, components = {}, {}, [], set(), []

  def visit(node):
    index[node] = low[node] = len(index)
    stack.append(node)
    on_stack.add(node)
    for successor in sorted(graph[node]):
      if successor not in index:
        visit(successor)
        low[node] = min(low[node], low[successor])
      elif successor in on_stack:
        low[node] = min(low[node], index[successor])
    if low[node] == index[node]:
      component = []
      while not component or component[-1] != node:
        component.append(stack.pop())
        on_stack.discard(component[-1])
      if len(component) > 1:
        components.append(sorted(component))

  for node in sorted(graph):
    if node not in index:
      visit(node)
  return components


def test_lpta_has_no_import_cycle():
  graph = import_graph()
  assert {'lpta.train', 'lpta.runs', 'lpta.families', 'lpta.families.fine_grained'} <= set(graph)
  assert 'lpta.checkpoints' in graph['lpta.runs']
  assert cycles(graph) == []


def test_a_cycle_through_a_lazy_import_is_found(tmp_path):
  package = tmp_path / 'lpta'
  (package / 'families').mkdir(parents=True)
  (package / '__init__.py').write_text('')
  (package / 'runs.py').write_text('from lpta import families\n')
  (package / 'families' / '__init__.py').write_text('from lpta.families import plugin\n')
  (package / 'families' / 'plugin.py').write_text(
      'from lpta import families\n\ndef load():\n  from lpta import runs\n')
  graph = import_graph(package)
  assert graph['lpta.families.plugin'] == {'lpta.runs'}  # its own package is left out
  assert cycles(graph) == [['lpta.families', 'lpta.families.plugin', 'lpta.runs']]
