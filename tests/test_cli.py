"""The CLI contract every command follows: help works, usage errors exit 2, expected failures are one line + exit 1."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from colorize import __version__
from colorize.cli import cli
from colorize.errors import ColorizeError

COMMANDS = ["scrape", "fetch", "prep", "stats", "train", "predict", "eval", "demo", "turing", "hints"]


def test_top_level_help_lists_every_command():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


@pytest.mark.parametrize("name", COMMANDS)
def test_each_subcommand_has_help(name):
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_unknown_option_exits_2():
    result = CliRunner().invoke(cli, ["prep", "--no-such-option"])
    assert result.exit_code == 2


def _failing_command():
    """A throwaway command on the real group that fails the expected way."""

    @cli.command(name="_fail_for_test")
    def _fail() -> None:
        raise ColorizeError("the thing is broken", "fix the thing")

    return "_fail_for_test"


def test_expected_failure_is_one_line_exit_1():
    name = _failing_command()
    try:
        result = CliRunner().invoke(cli, [name])
    finally:
        cli.commands.pop(name, None)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == ["error: the thing is broken — fix the thing"]
    assert "Traceback" not in result.output


def test_verbose_shows_traceback_for_expected_failure(caplog):
    name = _failing_command()
    try:
        result = CliRunner().invoke(cli, ["-v", name])
    finally:
        cli.commands.pop(name, None)
    assert result.exit_code == 1
    assert any(r.exc_info for r in caplog.records), "with -v the traceback is logged"


def test_expected_failure_as_real_subprocess(tmp_path):
    """A real process: a missing model file is an expected failure, so one `error:` line and exit 1."""
    proc = subprocess.run(
        [sys.executable, "-m", "colorize", "fetch", str(tmp_path / "missing.json"), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr


def test_usage_error_as_real_subprocess():
    proc = subprocess.run([sys.executable, "-m", "colorize", "train", "--epochs", "zero"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_data_dir_from_environment(monkeypatch, tmp_path):
    seen = {}

    @cli.command(name="_datadir_for_test")
    @click.pass_context
    def _show(ctx):
        seen["data_dir"] = ctx.obj["data_dir"]

    monkeypatch.setenv("COLORIZE_DATA_DIR", str(tmp_path))
    try:
        result = CliRunner().invoke(cli, ["_datadir_for_test"])
    finally:
        cli.commands.pop("_datadir_for_test", None)
    assert result.exit_code == 0, result.output
    assert seen["data_dir"] == str(tmp_path)
