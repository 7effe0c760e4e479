"""Kernel tests run the Triton kernels under the interpreter on the CPU.

``TRITON_INTERPRET=1`` must be set before any ``@triton.jit`` decorator runs, i.e. before a
``triton_impl`` module is imported; pytest imports this file before the test modules of this folder.
"""

import os

os.environ["TRITON_INTERPRET"] = "1"

try:
    import triton

    triton.knobs.runtime.interpret = True
except ImportError:  # pragma: no cover - triton is a dependency on Linux x86-64
    pass
