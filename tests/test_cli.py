"""The aimc-lab command: its commands, argument errors without tracebacks, fast help, and servers that
stop with every kernel on SIGTERM and Ctrl-C."""

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat import v4

from aimc_lab import cli
from aimc_lab.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def test_info_and_mvm_error(capsys):
    assert main(["info"]) == 0
    assert "backend requested" in capsys.readouterr().out
    assert main(["mvm-error", "--size", "64", "--vectors", "50", "--seed", str(2**64 - 1)]) == 0
    out = capsys.readouterr().out
    assert "standard HWA" in out and "%" in out


@pytest.mark.parametrize("argv, message", [
    (["mvm-error", "--seed", "18446744073709551616"],
     "argument --seed: must be an integer in [0, 18446744073709551615]; got 18446744073709551616"),
    (["mvm-error", "--seed", "-1"], "argument --seed: must be an integer in [0, 18446744073709551615]; got -1"),
    (["mvm-error", "--size", "60000"], "argument --size: must be an integer in [1, 4096]; got 60000"),
    (["mvm-error", "--size", "0"], "argument --size: must be an integer in [1, 4096]; got 0"),
    (["mvm-error", "--vectors", "ten"], "argument --vectors: must be an integer in [1, 10000000]; got 'ten'"),
    (["mvm-error", "--size", "4096", "--vectors", "5000"],
     "--vectors x --size must be at most 10000000 (memory); got 5000 x 4096 = 20480000"),
    (["serve", "notebooks/dashboards/tile_lab.ipynb", "--port", "-1"],
     "argument --port: must be an integer in [1, 65535]; got -1"),
    (["serve", "notebooks/dashboards/tile_lab.ipynb", "--port", "70000"],
     "argument --port: must be an integer in [1, 65535]; got 70000"),
    (["serve", "does/not/exist.ipynb"], "notebook 'does/not/exist.ipynb' does not exist"),
    (["lab", "--port", "0"], "argument --port: must be an integer in [1, 65535]; got 0"),
])
def test_bad_arguments_are_usage_errors_not_tracebacks(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_serve_refuses_a_port_in_use(capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit):
            main(["serve", str(ROOT / "notebooks" / "dashboards" / "tile_lab.ipynb"), "--port", str(port)])
    assert f"--port {port} is in use on 127.0.0.1" in capsys.readouterr().err


def test_serve_finds_a_shipped_dashboard_by_name():
    assert cli._dashboard("tile_lab") == ROOT / "notebooks" / "dashboards" / "tile_lab.ipynb"
    assert cli._dashboard("drift_lab.ipynb") == ROOT / "notebooks" / "dashboards" / "drift_lab.ipynb"
    assert cli._dashboard("01_analog_mvm") is None


def test_ctrl_c_in_a_command_exits_130_without_traceback(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_info", interrupted)
    assert main(["info"]) == 130
    assert "interrupted" in capsys.readouterr().err


def _subparsers(parser):
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def test_every_command_and_option_has_help():
    parser = build_parser()
    subparsers = _subparsers(parser)
    assert {c.dest for c in subparsers._choices_actions} == {"info", "mvm-error", "serve", "tutorials", "lab"}
    assert all(c.help for c in subparsers._choices_actions)
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            assert action.help, f"aimc-lab {name}: {action.dest} has no help text"


def test_help_and_argument_errors_do_not_import_torch():
    """``import aimc_lab.cli`` runs aimc_lab/__init__.py, which loads torch only when a name that needs it
    is first used (PEP 562): help and argument errors load neither torch nor numpy nor the kernels."""
    code = (
        "import sys\n"
        "from aimc_lab.cli import main\n"
        "for argv in (['--help'], ['serve', '--help'], ['mvm-error', '--size', '0']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = sorted(m for m in ('torch', 'numpy', 'aimc_lab.kernels', 'aimc_lab.tile') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "HEAVY []" in done.stdout, done.stdout + done.stderr


def test_help_answers_within_a_second():
    """``aimc-lab --help`` in a fresh process: under 1 s of CPU time (the machine's load stretches the
    wall time, not the CPU time; importing torch alone costs more than that)."""
    command = Path(sys.executable).with_name("aimc-lab")
    argv = [str(command), "--help"] if command.exists() else [sys.executable, "-m", "aimc_lab", "--help"]
    before = os.times()
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - start
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    print(f"aimc-lab --help: {cpu:.2f} s CPU, {wall:.2f} s wall")
    assert done.returncode == 0 and "serve" in done.stdout, done.stderr
    assert cpu < 1.0, f"aimc-lab --help took {cpu:.2f} s of CPU time (wall {wall:.2f} s)"


def test_python_dash_m_runs_the_command():
    done = subprocess.run([sys.executable, "-m", "aimc_lab", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    for command in ("info", "mvm-error", "serve", "tutorials", "lab"):
        assert command in done.stdout


def test_tutorials_copies_notebooks_and_keeps_edits(tmp_path, capsys):
    dest = tmp_path / "course"
    assert main(["tutorials", str(dest)]) == 0
    copied = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert copied == ["01_analog_mvm.ipynb", "02_pcm_drift_inference.ipynb", "03_inmemory_training.ipynb",
                      "04_hwa_training.ipynb", "05_customization.ipynb", "dashboards/README.md", "dashboards/design_lab.ipynb", "dashboards/drift_lab.ipynb",
                      "dashboards/tile_lab.ipynb"]
    assert (dest / "01_analog_mvm.ipynb").read_bytes() == (ROOT / "notebooks" / "01_analog_mvm.ipynb").read_bytes()
    (dest / "01_analog_mvm.ipynb").write_text("edited")
    with pytest.raises(SystemExit):
        main(["tutorials", str(dest)])
    assert "already exist" in capsys.readouterr().err
    assert (dest / "01_analog_mvm.ipynb").read_text() == "edited"
    assert main(["tutorials", str(dest), "--force"]) == 0
    assert (dest / "01_analog_mvm.ipynb").read_text() != "edited"


def test_copy_tutorials_rejects_bad_arguments(tmp_path):
    from aimc_lab.tutorials import copy_tutorials

    with pytest.raises(TypeError, match="dest must be a str or Path; got int"):
        copy_tutorials(3)
    with pytest.raises(TypeError, match="overwrite must be a bool; got str"):
        copy_tutorials(tmp_path, overwrite="yes")
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        copy_tutorials(tmp_path / "file")


@pytest.mark.parametrize("uid", [0, 1000])
def test_lab_copies_once_and_runs_jupyterlab_as_root_too(tmp_path, monkeypatch, uid):
    commands = []
    monkeypatch.setattr(cli, "_supervise", lambda cmd: commands.append(cmd) or 0)
    monkeypatch.setattr(os, "getuid", lambda: uid)
    dest = tmp_path / "course"
    assert main(["lab", str(dest), "--port", "8899", "--no-browser"]) == 0
    assert (dest / "02_pcm_drift_inference.ipynb").exists()
    cmd = commands[0]
    assert cmd[1:3] == ["lab", f"--notebook-dir={dest}"]
    assert "--port=8899" in cmd and "--no-browser" in cmd and "--ServerApp.port_retries=0" in cmd
    assert ("--allow-root" in cmd) == (uid == 0)
    (dest / "01_analog_mvm.ipynb").write_text("edited")
    assert main(["lab", str(dest)]) == 0  # a second start keeps the student's copy
    assert (dest / "01_analog_mvm.ipynb").read_text() == "edited"


def test_servers_default_to_one_torch_thread(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert cli._child_env()["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert cli._child_env()["OMP_NUM_THREADS"] == "4"


# ---- the server really stops: SIGTERM and Ctrl-C (SIGINT) on `aimc-lab serve` ------------------------

def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port):
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _unexpected_tracebacks(out):
    """The tracebacks in a server's output, less ipykernel's own error for a kernel stopped mid-reply."""
    blocks = out.split("Traceback (most recent call last):")[1:]
    kernel_stopped_mid_reply = ("ipykernel/kernelbase.py", "zmq.error.ZMQError: Socket operation on non-socket")
    return [b for b in blocks if "aimc_lab" in b or not all(mark in b for mark in kernel_stopped_mid_reply)]


def test_only_the_kernel_shutdown_race_is_tolerated():
    race = ("Traceback (most recent call last):\n  File \".../ipykernel/kernelbase.py\", line 508\n"
            "zmq.error.ZMQError: Socket operation on non-socket\n")
    ours = "Traceback (most recent call last):\n  File \".../aimc_lab/cli.py\", line 9\nKeyError: 1\n"
    assert _unexpected_tracebacks("serving\n" + race) == []
    assert len(_unexpected_tracebacks(race + ours)) == 1
    assert len(_unexpected_tracebacks("Traceback (most recent call last):\nValueError\n")) == 1


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_stops_voila_and_its_kernel(tmp_path, signum):
    psutil = pytest.importorskip("psutil")
    pytest.importorskip("voila")
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [v4.new_code_cell("print('ready')")]
    nbformat.write(nb, tmp_path / "tiny.ipynb")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "aimc_lab", "serve", str(tmp_path / "tiny.ipynb"),
                             "--port", str(port)], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        _wait(lambda: _listening(port) or proc.poll() is not None, 120, "Voila to listen")
        assert proc.poll() is None, proc.stdout.read()
        # Rendering the page starts a kernel (the process Voila would leave behind); the streamed page
        # ends once the kernel has run the cell.
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=120) as page:
            assert page.status == 200 and "ready" in page.read().decode()
        me = psutil.Process(proc.pid)
        _wait(lambda: any("ipykernel" in " ".join(c.cmdline()) for c in me.children(recursive=True)), 60,
              "the kernel")
        children = me.children(recursive=True)
        proc.send_signal(signum)
        code = proc.wait(timeout=60)
        out = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 128 + signum
    # No traceback from aimc-lab or Voila. The one exception is upstream's: a kernel that Voila's pool
    # is still warming up (running the notebook) when the server shuts it down can print ipykernel's
    # "Socket operation on non-socket" while it replies on a socket already closed. It is the kernel
    # being stopped mid-cell, which is what shutting down means; CI hit it once (Ctrl-C case).
    assert not _unexpected_tracebacks(out), out
    _wait(lambda: not _listening(port), 30, f"port {port} to close")
    _wait(lambda: not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children), 30,
          "Voila and its kernel to exit")
