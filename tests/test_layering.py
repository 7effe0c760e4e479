"""The package's layer order, checked: no module imports a higher layer, not even inside a function.

Layers, low to high (docs: DESIGN's "config → kernels → tile → nn → train/inference → widgets")::

    0 base      config, presets, data, _malloc, _checks          plain data, validation, datasets
    1 kernels   aimc_lab.kernels.*                                tensors in, tensors out
    2 devices   aimc_lab.devices.*                                physics of devices; may call kernels
    3 tile      aimc_lab.tile
    4 nn        aimc_lab.nn.*
    5 model     convert, summary, cost, inference                 whole-model operations
    6 train     aimc_lab.train.*, distributed
    7 front     widgets, exercises, tutorials, cli, __main__      what users touch

A module may import its own layer and the layers below. Every ``import`` statement counts, also the
ones inside functions, because a function-level import of a higher layer is a cycle hidden from the
reader. The one sanctioned exception is the config registry pulling in the modules that register
config classes by name (``config._ensure_registered``), which ``import aimc_lab`` needs to stay free
of torch; it is listed below and checked to be the only one.

Also: every module imports on its own, in a fresh interpreter state (a forked child with only the
third-party libraries preloaded), so no module works only because another was imported first.
"""

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = {"aimc_lab": ROOT / "aimc_lab", "aimc_lab.kernels": ROOT / "kernels",
                "aimc_lab.widgets": ROOT / "widgets"}

LAYERS = [
    ("base", ["aimc_lab", "aimc_lab.config", "aimc_lab.validation", "aimc_lab._registry", "aimc_lab._dist", "aimc_lab.presets", "aimc_lab.data", "aimc_lab._malloc",
              "aimc_lab._checks"]),
    ("kernels", ["aimc_lab.kernels"]),
    ("devices", ["aimc_lab.devices"]),
    ("tile", ["aimc_lab.tile"]),
    ("nn", ["aimc_lab.nn"]),
    ("model", ["aimc_lab.convert", "aimc_lab.summary", "aimc_lab.cost", "aimc_lab.inference"]),
    ("train", ["aimc_lab.train", "aimc_lab.distributed"]),
    ("front", ["aimc_lab.widgets", "aimc_lab.exercises", "aimc_lab.tutorials", "aimc_lab.cli",
               "aimc_lab.__main__"]),
]

# (importing module, function, imported module): upward imports that are the registry's by design
SANCTIONED = {
    ("aimc_lab.config", "_ensure_registered", "aimc_lab.devices.pulsed"),
    ("aimc_lab.config", "_ensure_registered", "aimc_lab.train.inmemory"),
    ("aimc_lab.config", "_ensure_registered", "aimc_lab.train"),
}


def modules():
    """{module name: source path} for every module of the package."""
    found = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            if package == "aimc_lab" and parts and parts[0] in ("kernels", "widgets"):
                continue
            found[".".join([package, *parts])] = path
    return found


def layer_of(name):
    """The layer index of a module: its longest matching prefix in LAYERS ("aimc_lab" alone is base)."""
    best, best_len = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = name == prefix or (prefix != "aimc_lab" and name.startswith(prefix + "."))
            if matches and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def imports_of(name, path):
    """(function name or '<module>', imported aimc_lab module) for every import statement in the file."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []

    def visit(node, where):
        for child in ast.iter_child_nodes(node):
            scope = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else where
            if isinstance(child, ast.Import):
                out.extend((scope, alias.name) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[:len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module
                out.append((scope, target))
                for alias in child.names:  # `from aimc_lab import tile` imports a submodule
                    out.append((scope, f"{target}.{alias.name}"))
            visit(child, scope)

    visit(tree, "<module>")
    known = modules()
    resolved = []
    for scope, target in out:
        while target and target not in known:  # `from aimc_lab.x import Name`: the module is aimc_lab.x
            target = target.rsplit(".", 1)[0] if "." in target else None
        if target and target.startswith("aimc_lab"):
            resolved.append((scope, target))
    return resolved


def test_every_module_has_a_layer():
    assert [name for name in modules() if layer_of(name) is None] == []


def test_no_module_imports_a_higher_layer():
    violations, used = [], set()
    for name, path in modules().items():
        mine = layer_of(name)
        for scope, target in imports_of(name, path):
            if target == "aimc_lab":  # the package root re-exports lazily; importing it is always fine
                continue
            if layer_of(target) > mine:
                if (name, scope, target) in SANCTIONED:
                    used.add((name, scope, target))
                    continue
                violations.append(f"{name} ({LAYERS[mine][0]}) imports {target} "
                                  f"({LAYERS[layer_of(target)][0]}) in {scope}")
    assert violations == []
    assert used, "the registry's sanctioned import is gone: remove it from SANCTIONED"


def test_the_check_sees_a_hidden_upward_import(tmp_path, monkeypatch):
    """The AST walk finds an import inside a nested function (what the old tile.py did)."""
    src = tmp_path / "tile.py"
    src.write_text("def make():\n    def inner():\n        from aimc_lab.train.inmemory import X\n    return inner\n")
    found = imports_of("aimc_lab.tile", src)
    assert ("inner", "aimc_lab.train.inmemory") in found
    assert layer_of("aimc_lab.train.inmemory") > layer_of("aimc_lab.tile")


_PRELOAD = ("torch", "numpy", "scipy", "pandas", "sklearn", "tqdm", "plotly.graph_objects", "ipywidgets", "triton")

_ISOLATION_SCRIPT = """
import importlib, os, sys
for lib in sys.argv[2].split(","):  # third-party libraries, loaded once before any fork
    try:
        importlib.import_module(lib)
    except ImportError:
        pass
sys.path.insert(0, sys.argv[1])
from tests.test_layering import modules
assert not [m for m in sys.modules if m.startswith("aimc_lab")], "aimc_lab was loaded before the forks"
failures = []
for name in modules():
    if name == "aimc_lab.__main__":  # importing it runs the CLI
        continue
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: import one module, report, exit without cleanup
        os.close(read)
        try:
            importlib.import_module(name)
            msg = b""
        except BaseException as err:
            msg = f"{type(err).__name__}: {err}".encode()
        os.write(write, msg[:2000])
        os._exit(0)
    os.close(write)
    msg = os.read(read, 4096).decode()
    os.close(read)
    _, status = os.waitpid(pid, 0)
    if msg or status:
        failures.append((name, msg or f"status {status}"))
print(repr(failures))
"""


def test_every_module_imports_on_its_own():
    """Each module in a forked child that has only third-party libraries loaded (no aimc_lab)."""
    import os
    import subprocess
    if not hasattr(os, "fork"):
        pytest.skip("needs os.fork")
    result = subprocess.run([sys.executable, "-c", _ISOLATION_SCRIPT, str(ROOT), ",".join(_PRELOAD)],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout[-3000:]
