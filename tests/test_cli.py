"""The aimc-lab command."""

import pytest

from aimc_lab.cli import main


def test_info_and_mvm_error(capsys):
    assert main(["info"]) == 0
    assert "backend requested" in capsys.readouterr().out
    assert main(["mvm-error", "--size", "64", "--vectors", "50"]) == 0
    out = capsys.readouterr().out
    assert "standard HWA" in out and "%" in out


def test_bad_arguments():
    with pytest.raises(SystemExit):
        main(["mvm-error", "--size", "0"])
    with pytest.raises(SystemExit):
        main(["serve", "does/not/exist.ipynb"])
