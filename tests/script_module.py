"""Load a script that is not a package module (benchmarks/, scripts/) as a module, for its tests."""

import importlib.util
from pathlib import Path


def load_script(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
