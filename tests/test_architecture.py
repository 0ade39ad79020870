"""The package's layering (ARCHITECTURE.md): no import cycles, no upward imports, short signatures.

Imports are read from the source with ``ast`` (function-local imports included), so a cycle hidden
behind a deferred import is still a cycle.
"""
import ast
import dataclasses
import importlib
import inspect
import pkgutil
from collections import defaultdict
from pathlib import Path

import pytest

import neurokpflow

PACKAGE = Path(neurokpflow.__file__).parent

#: the layers, bottom up; a module may import its own layer's package and any lower layer
LAYERS = [
    {"errors", "_version", "_logging"},                          # foundations, used by every layer
    {"_validation", "_io", "_runtime", "_registry"},
    {"data"}, {"tasks"}, {"compare"},                            # independent of each other
    {"models"},
    {"training"},
    {"kpflow"},
    {"analysis"},
    {"viz", "sweep"},
    {"cli"},
]
#: packages of the bottom layer that must not import one another
INDEPENDENT = {"data", "tasks", "compare"}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _rank(top: str) -> int:
    for i, layer in enumerate(LAYERS):
        if top in layer:
            return i
    raise AssertionError(f"neurokpflow.{top} is in no layer of tests/test_architecture.py; add it there and to "
                         "ARCHITECTURE.md")


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports():
    """``{module: {imported neurokpflow module}}`` for every module of the package."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = defaultdict(set)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text())
        # a package's deprecated alias (a module __getattr__ that warns DeprecationWarning) may point to the
        # name's new home in a higher layer; it is resolved only when the old name is used
        shims = {id(n) for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "__getattr__"
                 and path.name == "__init__.py" and "DeprecationWarning" in ast.unparse(f) for n in ast.walk(f)}
        for node in ast.walk(tree):
            if id(node) in shims:
                continue
            targets = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    stem = ".".join(base + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                targets = [stem] + [f"{stem}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                if t in modules and t != name:
                    graph[name].add(t)
    return modules, graph


def test_every_subpackage_is_in_a_layer():
    for child in PACKAGE.iterdir():
        if child.name.startswith("__") or child.suffix not in (".py", ""):
            continue
        if child.is_dir() and not (child / "__init__.py").exists():
            continue
        _rank(child.stem)


def test_no_upward_or_sideways_imports_between_layers():
    _, graph = _imports()
    wrong = []
    for source, targets in graph.items():
        for target in targets:
            a, b = _top(source), _top(target)
            if a == b or not a or not b:
                continue
            if _rank(b) > _rank(a) or (_rank(a) == _rank(b)) or (a in INDEPENDENT and b in INDEPENDENT):
                wrong.append(f"{source} -> {target}")
    assert not wrong, "imports against the layering:\n" + "\n".join(sorted(wrong))


def test_the_package_root_and_version_pull_in_no_layer():
    _, graph = _imports()
    assert graph.get("neurokpflow._version", set()) == set()
    # the root's module-level imports (its other names are resolved lazily, on first use)
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    package_imports = [(n.module, [a.name for a in n.names]) for n in top_level if isinstance(n, ast.ImportFrom)]
    assert package_imports == [(None, ["_logging"]), ("_version", ["__version__"])]
    assert not [n for n in top_level if isinstance(n, ast.Import)]
    assert _imports()[1].get("neurokpflow._logging", set()) == set()


def test_no_import_cycles():
    modules, graph = _imports()
    # a package's __init__ importing its own modules is not a cycle of the code it re-exports
    edges = {m: {t for t in ts if not (modules[m].name == "__init__.py" and t.startswith(m + "."))}
             for m, ts in graph.items()}
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt in modules and modules[nxt].name == "__init__.py" and node.startswith(nxt + "."):
                continue  # a module importing its own package's __init__ (for re-exports) is resolved lazily
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for m in sorted(modules):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


# ----------------------------------------------------------------------------------- signatures
MAX_PARAMETERS = 8


def _public_callables():
    """Every public function, class constructor and public method the subpackages export."""
    seen, found = set(), []
    for info in pkgutil.walk_packages(neurokpflow.__path__, "neurokpflow."):
        if any(part.startswith("_") for part in info.name.split(".")[1:]):
            continue
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name, None)
            if id(obj) in seen or not getattr(obj, "__module__", "").startswith("neurokpflow"):
                continue
            seen.add(id(obj))
            if inspect.isfunction(obj):
                found.append((f"{obj.__module__}.{name}", obj))
            elif inspect.isclass(obj):
                # a dataclass's generated __init__ lists its fields: options and result records, not a signature
                members = {k: v for k, v in vars(obj).items() if inspect.isfunction(v)
                           and (not k.startswith("_") or (k == "__init__" and not dataclasses.is_dataclass(obj)))}
                found += [(f"{obj.__module__}.{name}.{k}", v) for k, v in members.items()]
    return found


def test_no_public_function_takes_more_than_eight_parameters():
    long = []
    for name, fn in _public_callables():
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.name not in ("self", "cls") and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        if len(params) > MAX_PARAMETERS:
            long.append(f"{name}: {len(params)}")
    assert not long, "group these parameters into an options object:\n" + "\n".join(sorted(long))
