"""benchmarks/training_algorithms.py runs end to end in both modes (short epochs, worker processes)."""

import csv
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "training_algorithms.py"


def test_training_benchmark_prints_every_row_and_writes_csv(tmp_path):
    out = tmp_path / "rows.csv"
    result = subprocess.run([sys.executable, str(SCRIPT), "--epochs", "1", "--seeds", "2", "--first-seed", "0",
                             "--jobs", "2", "--max-steps", "40", "--csv", str(out)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    names = [r["algorithm"] for r in rows]
    assert names[:7] == ["floating point", "SGD", "Tiki-Taka, cal. ref 200", "TTv2, cal. ref 200",
                         "c-TTv2, cal. ref 200", "AGAD", "mixed precision"]
    assert {"c-TTv2, no ref", "TTv2, ideal ref", "TTv2, cal. ref 1000"} <= set(names)
    for row in rows:
        accs = [float(a) for a in row["accs"].split()]
        assert len(accs) == 2 and all(0 <= a <= 100 for a in accs), row
        assert float(row["wall_s"]) > 0
        assert row["algorithm"] in result.stdout
    # 40 steps (half an epoch) lift floating point well above chance (10 classes): 55 % and 34 % on seeds 0, 1
    assert float(rows[0]["acc_mean"]) > 25
    # the calibrated rows report the reference error they were given
    assert "ref - w*" in next(r["settings"] for r in rows if r["algorithm"] == "TTv2, cal. ref 200")


def test_training_benchmark_rejects_bad_counts():
    result = subprocess.run([sys.executable, str(SCRIPT), "--jobs", "0"], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "--jobs" in result.stderr


def test_protocol_mode_prints_every_algorithm_with_its_defaults(tmp_path):
    out = tmp_path / "protocol.csv"
    result = subprocess.run([sys.executable, str(SCRIPT), "--mode", "protocol", "--epochs", "1", "--seeds", "2",
                             "--max-steps", "3", "--jobs", "2", "--csv", str(out)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "64-256-128-10 sigmoid" in result.stdout and "ReRAM-SB" in result.stdout
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["algorithm"] for r in rows] == ["floating point", "SGD", "Tiki-Taka", "TTv2", "c-TTv2", "AGAD",
                                             "mixed precision"]
    for row in rows:
        assert row["mode"] == "protocol" and float(row["lr"]) == 0.1
        assert len(row["accs"].split()) == 2 and float(row["s_per_epoch"]) > 0
        assert row["settings"] == ("" if row["algorithm"] == "floating point" else "defaults")


def test_protocol_mode_refuses_a_learning_rate():
    result = subprocess.run([sys.executable, str(SCRIPT), "--mode", "protocol", "--lr", "0.5"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0 and "--lr" in result.stderr


def _short_protocol(tmp_path, *options):
    """One seed of the protocol mode, 1 epoch of 3 steps, with ``options``: (stdout, CSV rows by algorithm)."""
    out = tmp_path / "protocol.csv"
    result = subprocess.run([sys.executable, str(SCRIPT), "--mode", "protocol", *options, "--epochs", "1",
                             "--seeds", "1", "--max-steps", "3", "--jobs", "1", "--csv", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(out, newline="") as fh:
        return result.stdout, {r["algorithm"]: r for r in csv.DictReader(fh)}


def test_protocol_mode_with_the_tuned_settings(tmp_path):
    stdout, rows = _short_protocol(tmp_path, "--settings", "tuned")
    assert "training_config tuned" in stdout
    assert all(r["mode"] == "protocol-tuned" and float(r["lr"]) == 0.1 for r in rows.values())
    assert rows["SGD"]["settings"] == "tuned"  # no overrides: the defaults with the tuned backward
    assert "fast_lr=5.0" in rows["TTv2"]["settings"] and "scale_fast_lr=True" in rows["TTv2"]["settings"]
    assert "in_chop_prob=0.05" in rows["c-TTv2"]["settings"]


def test_tuned_settings_are_for_the_protocol_mode_only():
    result = subprocess.run([sys.executable, str(SCRIPT), "--settings", "tuned"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0 and "--settings" in result.stderr


def test_protocol_mode_with_another_write_noise(tmp_path):
    """--write-noise changes the preset's write noise of every analog row (what limits mixed precision)."""
    stdout, rows = _short_protocol(tmp_path, "--write-noise", "0")
    assert "ReRAM-SB preset with write_noise_std 0," in stdout
    settings = {name: r["settings"] for name, r in rows.items()}
    assert settings.pop("floating point") == ""
    assert all(s == "defaults; device write_noise_std=0" for s in settings.values()), settings
    bad = subprocess.run([sys.executable, str(SCRIPT), "--mode", "protocol", "--write-noise", "-1"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "--write-noise = -1.0 is invalid" in bad.stderr
