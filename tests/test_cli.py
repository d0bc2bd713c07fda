import subprocess
import sys

from labkit import cli


def test_profile_command(capsys, monkeypatch):
    monkeypatch.setenv("LABKIT_PROFILE", "smoke")
    assert cli.main(["profile"]) == 0
    assert "LABKIT_PROFILE=smoke" in capsys.readouterr().out


def test_bad_profile_is_reported_without_traceback(capsys, monkeypatch):
    monkeypatch.setenv("LABKIT_PROFILE", "huge")
    assert cli.main(["profile"]) == 1
    err = capsys.readouterr().err
    assert "huge" in err and "Traceback" not in err


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 2
    assert "usage: labkit" in capsys.readouterr().out


def test_console_script_entry_point():
    out = subprocess.run([sys.executable, "-m", "labkit.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "labkit" in out.stdout
