"""Kernel tests run the Triton kernels under the interpreter on the CPU.

``TRITON_INTERPRET=1`` must be set before any ``@triton.jit`` decorator runs, i.e. before a
``triton_impl`` module is imported; pytest imports this file before the test modules of this folder.
"""

import os

os.environ["TRITON_INTERPRET"] = "1"

try:
    import triton

    triton.knobs.runtime.interpret = True
except ImportError:  # a CPU install without the gpu extra: the kernel-vs-reference tests cannot run
    collect_ignore = ["test_analog_mvm_triton.py", "test_analog_mvm_triton_compile.py", "test_backend.py",
                      "test_elementwise_triton.py", "test_pulsed_update.py"]
