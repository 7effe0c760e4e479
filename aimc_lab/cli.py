"""The ``aimc-lab`` command: environment info, a quick MVM-error check, serving a dashboard."""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import torch

__all__ = ["main"]


def _info(_: argparse.Namespace) -> int:
    import aimc_lab
    from aimc_lab.kernels import backend

    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"aimc-lab {aimc_lab.__version__}  python {platform.python_version()}  torch {torch.__version__}")
    print(f"backend requested: {backend.get()}  active: {backend.active()}  "
          f"triton importable: {backend.triton_available()}  GPU: {cuda}")
    return 0


def _mvm_error(args: argparse.Namespace) -> int:
    from aimc_lab import presets
    from aimc_lab.kernels import analog_mvm

    if args.size < 1 or args.vectors < 1:
        raise SystemExit(f"--size and --vectors must be >= 1, got {args.size} and {args.vectors}")
    g = torch.Generator().manual_seed(args.seed)
    w = (0.246 * torch.randn(args.size, args.size, generator=g)).clamp(-1, 1)
    x = 2 * torch.rand(args.vectors, args.size, generator=g) - 1
    exact = x @ w.T
    for name in ("library defaults", "standard HWA"):
        io = presets.by_name(name).forward
        y = analog_mvm(x, w, io, generator=g)
        print(f"{name:18s} relative L2 error {100 * ((y - exact).norm() / exact.norm()).item():6.2f} %"
              " (MVM nonidealities only)")
    return 0


def _serve(args: argparse.Namespace) -> int:
    voila = shutil.which("voila") or str(Path(sys.executable).with_name("voila"))
    if not Path(voila).exists():
        raise SystemExit("voila is not installed: pip install 'aimc-lab[lab]'")
    notebook = Path(args.notebook)
    if not notebook.exists():
        raise SystemExit(f"notebook {notebook} does not exist (try notebooks/dashboards/tile_lab.ipynb)")
    cmd = [voila, "--no-browser", f"--port={args.port}", "--Voila.ip=127.0.0.1", str(notebook)]
    print(" ".join(cmd))
    return subprocess.call(cmd)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="aimc-lab", description="analog in-memory computing lab")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, backend, GPU").set_defaults(func=_info)
    p = sub.add_parser("mvm-error", help="relative error of a noisy analog MVM")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--vectors", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_mvm_error)
    p = sub.add_parser("serve", help="serve a dashboard notebook with Voila on localhost")
    p.add_argument("notebook")
    p.add_argument("--port", type=int, default=8866)
    p.set_defaults(func=_serve)
    args = parser.parse_args(argv)
    return args.func(args)
