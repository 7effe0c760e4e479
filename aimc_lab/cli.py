"""The ``aimc-lab`` command: environment info, a quick MVM-error check, the tutorials, serving a dashboard.

Argument parsing imports nothing heavy (torch is imported by the commands that compute), so ``--help``
and argument errors answer at once. The servers (``serve``: Voila, ``lab``: JupyterLab) run as child
processes in their own session; SIGINT (Ctrl-C), SIGTERM and SIGHUP stop the server and every kernel it
started, within bounded waits, without a traceback.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional

__all__ = ["main", "build_parser", "voila_options"]

SEED_MAX = 2**64 - 1  # torch.Generator.manual_seed takes a 64-bit seed
SIZE_MAX = 4096  # a 4096 x 4096 float32 weight is 64 MB; the noisy MVM keeps a few such tensors
ELEMENTS_MAX = 10_000_000  # --vectors x --size: 40 MB per [vectors, size] tensor
PORT_MIN, PORT_MAX = 1, 65535
SHUTDOWN_WAIT_S = 10.0  # how long a server gets to stop its kernels before they are killed
DEFAULT_TUTORIALS_DIR = "aimc-lab-tutorials"
# JupyterLab extensions the dashboards never use, which Voila would otherwise load into every page:
# jupyterlab-plotly renders plotly's own figure outputs and pulls in a 4.8 MB copy of plotly.js (the
# aimc-lab figures bring their own, see aimc_lab.widgets._figure); jupyterlab_pygments styles code
# cells, which Voila strips. Leaving them out cut the Tile lab's time to the first widget (Chromium
# throttled 4x, 2 cores, interleaved loads) from a median 18.8 to 16.1 s at load 2-4 and from 39 to
# 28 s at load 7-15 (tests/browser/test_dashboards.py prints it).
VOILA_UNUSED_EXTENSIONS = ("jupyterlab-plotly", "jupyterlab_pygments")


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer in [{low}, {high}]; got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be an integer in [{low}, {high}]; got {value}")
        return value
    return parse


def _child_env() -> dict:
    """The servers' environment: one torch thread per kernel unless OMP_NUM_THREADS says otherwise."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _executable(name: str) -> Optional[str]:
    """``name`` next to this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else shutil.which(name)


def _info(args: argparse.Namespace) -> int:
    import platform

    import torch

    import aimc_lab
    from aimc_lab.kernels import backend

    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"aimc-lab {aimc_lab.__version__}  python {platform.python_version()}  torch {torch.__version__}")
    print(f"backend requested: {backend.get()}  active: {backend.active()}  "
          f"triton importable: {backend.triton_available()}  GPU: {cuda}")
    return 0


def _mvm_error(args: argparse.Namespace) -> int:
    if args.size * args.vectors > ELEMENTS_MAX:
        args.parser.error(f"--vectors x --size must be at most {ELEMENTS_MAX} (memory); "
                          f"got {args.vectors} x {args.size} = {args.vectors * args.size}")
    import torch

    from aimc_lab import presets
    from aimc_lab.kernels import analog_mvm

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


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _descendants(pid: int) -> list:
    """The processes ``pid`` started, recursively (psutil comes with ipykernel); [] if psutil is missing."""
    try:
        import psutil
    except ImportError:
        return []
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _stop(proc: subprocess.Popen) -> None:
    """Stop a server: SIGTERM (it shuts its kernels down), then kill whatever outlives the bounded wait.
    Kernels run in sessions of their own, so they are collected before the server goes."""
    children = _descendants(proc.pid)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=SHUTDOWN_WAIT_S)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            proc.kill()
        proc.wait()
    alive = [child for child in children if child.is_running()]
    for child in alive:
        try:
            child.terminate()
        except Exception:  # gone in between: psutil.NoSuchProcess
            pass
    deadline = time.monotonic() + SHUTDOWN_WAIT_S / 2
    for child in alive:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except Exception:  # psutil.TimeoutExpired (or already gone): kill it
            try:
                child.kill()
            except Exception:
                pass


class _Stopped(Exception):
    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _supervise(cmd: List[str]) -> int:
    """Run a server in its own session until it exits or this process gets SIGINT/SIGTERM/SIGHUP."""
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def on_signal(signum, frame):
        raise _Stopped(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in handled}
    proc = None
    try:
        proc = subprocess.Popen(cmd, env=_child_env(), start_new_session=True)
        return proc.wait()
    except _Stopped as stopped:
        for sig in handled:  # a second Ctrl-C must not cut the shutdown short
            signal.signal(sig, signal.SIG_IGN)
        print(f"\naimc-lab: {signal.Signals(stopped.signum).name}, stopping the server and its kernels",
              file=sys.stderr)
        if proc is not None:
            _stop(proc)
        return 128 + stopped.signum
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _dashboard(name: str) -> Optional[Path]:
    """A dashboard shipped with aimc-lab, by name (``tile_lab`` or ``tile_lab.ipynb``)."""
    from aimc_lab.tutorials import source_dir

    try:
        folder = source_dir() / "dashboards"
    except FileNotFoundError:
        return None
    path = folder / (name if name.endswith(".ipynb") else f"{name}.ipynb")
    return path if path.is_file() else None


def voila_options(all_extensions: bool = False) -> List[str]:
    """The Voila options ``serve`` adds (and the browser tests serve with).

    ``--preheat_kernel``: the dashboard is executed in a waiting kernel before anyone asks for it, so a
    page does not wait for the kernel to start and run it. The extension denylist leaves out
    :data:`VOILA_UNUSED_EXTENSIONS` unless ``all_extensions`` (a notebook that displays plotly's own
    figures, ``fig.show()``, needs jupyterlab-plotly)."""
    options = ["--preheat_kernel=True"]
    if not all_extensions:
        options += [f"--VoilaConfiguration.extension_denylist={name}" for name in VOILA_UNUSED_EXTENSIONS]
    return options


def _serve(args: argparse.Namespace) -> int:
    voila = _executable("voila")
    if voila is None:
        args.parser.error("voila is not installed: pip install 'aimc-lab[lab]'")
    notebook = Path(args.notebook)
    if not notebook.exists():
        shipped = _dashboard(args.notebook)
        if shipped is None:
            args.parser.error(f"notebook {args.notebook!r} does not exist; give a path to a .ipynb file or "
                              "folder, or a shipped dashboard: tile_lab, drift_lab, design_lab")
        notebook = shipped
    if not _port_free(args.port):
        args.parser.error(f"--port {args.port} is in use on 127.0.0.1; choose another port")
    cmd = [voila, "--no-browser", f"--port={args.port}", "--Voila.port_retries=0", "--Voila.ip=127.0.0.1",
           *voila_options(all_extensions=args.all_extensions), str(notebook)]
    print(f"serving {notebook} at http://127.0.0.1:{args.port}/  (Ctrl-C stops it)", flush=True)
    return _supervise(cmd)


def _tutorials(args: argparse.Namespace) -> int:
    from aimc_lab.tutorials import copy_tutorials

    try:
        copied = copy_tutorials(args.dest, overwrite=args.force)
    except (FileExistsError, NotADirectoryError, FileNotFoundError) as err:
        args.parser.error(str(err))
    for path in copied:
        print(path)
    print(f"copied {len(copied)} files to {Path(args.dest).expanduser()}; open them with: aimc-lab lab {args.dest}")
    return 0


def _lab(args: argparse.Namespace) -> int:
    from aimc_lab.tutorials import copy_tutorials, tutorial_files

    jupyter = _executable("jupyter")
    if jupyter is None:
        args.parser.error("JupyterLab is not installed: pip install 'aimc-lab[lab]'")
    dest = Path(args.dest).expanduser()
    if not (dest.is_dir() and any(dest.glob("*.ipynb"))):
        copy_tutorials(dest)  # first time: copy; later: keep the student's edited copies
        print(f"copied {len(tutorial_files())} files to {dest}", flush=True)
    cmd = [jupyter, "lab", f"--notebook-dir={dest}"]
    if hasattr(os, "getuid") and os.getuid() == 0:
        cmd.append("--allow-root")  # containers, CI and Binder-like images run as root
    if args.port is not None:
        cmd += [f"--port={args.port}", "--ServerApp.port_retries=0"]
    if args.no_browser:
        cmd.append("--no-browser")
    return _supervise(cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aimc-lab", description="Analog in-memory computing lab: tutorials, dashboards and quick checks.",
        epilog="Servers run with OMP_NUM_THREADS=1 unless it is set (one torch thread per kernel).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("info", help="versions, backend, GPU", description="Print versions, the kernel backend "
                       "and the GPU.")
    p.set_defaults(func=_info, parser=p)

    p = sub.add_parser("mvm-error", help="relative error of a noisy analog MVM",
                       description="Relative L2 error of a noisy analog matrix-vector multiply (random "
                                   "weights and inputs) under the library defaults and the standard HWA preset.")
    p.add_argument("--size", type=_int_in(1, SIZE_MAX), default=512,
                   help=f"tile rows and columns, 1-{SIZE_MAX} (default: %(default)s)")
    p.add_argument("--vectors", type=_int_in(1, ELEMENTS_MAX), default=1000,
                   help=f"input vectors, 1-{ELEMENTS_MAX}; vectors x size at most {ELEMENTS_MAX} "
                        "(default: %(default)s)")
    p.add_argument("--seed", type=_int_in(0, SEED_MAX), default=0,
                   help=f"random seed, 0-{SEED_MAX} (default: %(default)s)")
    p.set_defaults(func=_mvm_error, parser=p)

    p = sub.add_parser("serve", help="serve a dashboard with Voila on 127.0.0.1",
                       description="Serve a notebook (or a folder of notebooks) as a Voila dashboard on "
                                   "127.0.0.1 only; Ctrl-C or SIGTERM stops Voila and its kernels.")
    p.add_argument("notebook", help="a .ipynb file or folder, or a shipped dashboard: tile_lab, drift_lab, design_lab")
    p.add_argument("--port", type=_int_in(PORT_MIN, PORT_MAX), default=8866,
                   help=f"port to listen on, {PORT_MIN}-{PORT_MAX}; fails if it is taken (default: %(default)s)")
    p.add_argument("--all-extensions", action="store_true",
                   help="load every installed JupyterLab extension into the page; by default "
                        f"{' and '.join(VOILA_UNUSED_EXTENSIONS)} are left out (the dashboards do not use "
                        "them; a notebook showing plotly's own figures with fig.show() needs jupyterlab-plotly)")
    p.set_defaults(func=_serve, parser=p)

    p = sub.add_parser("tutorials", help="copy the tutorial notebooks and dashboards to a folder",
                       description="Copy the tutorial notebooks and the dashboards into DEST (created if "
                                   "missing), to run and change them there.")
    p.add_argument("dest", help="the folder to copy into")
    p.add_argument("--force", action="store_true", help="overwrite files that already exist in DEST")
    p.set_defaults(func=_tutorials, parser=p)

    p = sub.add_parser("lab", help="open the tutorials in JupyterLab",
                       description="Open JupyterLab on a folder of tutorials, copying them there first "
                                   "if the folder has no notebooks (later runs keep your edits).")
    p.add_argument("dest", nargs="?", default=DEFAULT_TUTORIALS_DIR,
                   help="the tutorials folder (default: ./%(default)s)")
    p.add_argument("--port", type=_int_in(PORT_MIN, PORT_MAX), default=None,
                   help=f"port for JupyterLab, {PORT_MIN}-{PORT_MAX} (default: JupyterLab's choice)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.set_defaults(func=_lab, parser=p)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("\naimc-lab: interrupted", file=sys.stderr)
        return 130
