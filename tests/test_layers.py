"""The layout is the architecture: each package of dream_core imports only
from the layers below it (read from the source, so a new import that runs
up a layer fails here at once, with its file and line)."""
import ast
import os

from conftest import ROOT

# lowest first; a package may import from its own layer and those before it
LAYERS = [
    {"errors", "version", "wire", "shot"},  # the standard library only (wire and shot are bundled into the add-on)
    {"config"},
    {"io"},
    {"models", "engine"},
    {"frame"},
    {"batch", "serving"},
    {"api", "cli", "tools", "__main__"},
]
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}
PACKAGE = os.path.join(ROOT, "dream_core")


def _imported(path: str, module: str):
    """(line, top-level dream_core part) for each import in the file."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    here = module.split(".")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = here[:len(here) - node.level] if node.level else []
            parts = base + (node.module.split(".") if node.module else [])
            if len(parts) > 1:
                yield node.lineno, parts[1] if parts[1] else None
            else:  # "from .. import x": x itself is the part
                for alias in node.names:
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dream_core."):
            yield node.lineno, node.module.split(".")[1]


def test_no_package_imports_from_a_layer_above_it():
    wrong = []
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
            module = rel[:-len(".__init__")] if rel.endswith(".__init__") else rel
            parts = module.split(".")
            if len(parts) < 2:
                continue
            own = parts[1]
            assert own in LEVEL, f"{rel}: dream_core.{own} has no layer in this test; give it one"
            for line, part in _imported(path, module if not name == "__init__.py" else module + ".__init__"):
                if part in LEVEL and LEVEL[part] > LEVEL[own]:
                    wrong.append(f"{os.path.relpath(path, ROOT)}:{line} imports dream_core.{part} (a layer above)")
    assert not wrong, "\n".join(wrong)


def test_each_file_name_is_one_concept():
    """No two modules of the engine, the add-on, the benchmarks and the demo share a file name
    (``__init__.py`` aside): an ``errors.py`` or ``base.py`` in two places is two concepts with one name."""
    seen: dict[str, list[str]] = {}
    for top in ("dream_core", "blender_addon", "benchmarks", "demo", "farm"):
        for folder, dirs, files in os.walk(os.path.join(ROOT, top)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in files:
                if name.endswith(".py") and name != "__init__.py":
                    seen.setdefault(name, []).append(os.path.relpath(os.path.join(folder, name), ROOT))
    assert not {name: paths for name, paths in seen.items() if len(paths) > 1}
