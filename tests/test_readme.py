"""The README cannot rot: every command it shows is checked against the real CLI, Makefile and tools.

- The first screen says what colorize does and shows exactly two commands: `make demo` and `make test`.
- Every `colorize ...` line (also `python -m colorize`, `torchrun ... -m colorize`) is parsed by the real
  click commands: the subcommand, every option and every value must be accepted.
- Every other command line must be one this file knows how to check (make targets exist in the
  Makefile, apt packages are the ones `make setup` installs, tools exist in the venv); an unknown
  command fails the test, so a new kind of command cannot slip in unchecked.
- `colorize demo --quick`, which the README shows, is run for real in tests/test_demo.py.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from colorize.cli import cli

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SHELL_LANGS = {"bash", "sh", "shell", "console"}


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced code block."""
    return [(m.group(1).strip().lower(), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.M | re.S)]


def shell_commands(text: str) -> list[str]:
    """Command lines of the shell blocks: continuations joined, comments and `$ ` prompts removed, words
    re-joined with shell quoting (so `"a b"` becomes `'a b'`)."""
    commands = []
    for lang, body in code_blocks(text):
        if lang not in SHELL_LANGS:
            continue
        joined = re.sub(r"\s*\\\n\s*", " ", body)
        for line in joined.splitlines():
            line = line.strip()
            if lang == "console":  # console blocks show output too: only `$ ` lines are commands
                if not line.startswith("$ "):
                    continue
            words = shlex.split(line.removeprefix("$ "), comments=True)  # drops trailing # comments
            if words:
                commands.append(shlex.join(words))
    return commands


def colorize_args(command: str) -> list[str] | None:
    """The arguments after `colorize` in a command line, or None when it does not run colorize."""
    words = shlex.split(command, comments=True)
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):  # VAR=value prefixes
        words.pop(0)
    for i, word in enumerate(words):
        if Path(word).name == "colorize" and (i == 0 or words[i - 1] == "-m"):
            return words[i + 1:]
    return None


def parse_with_click(args: list[str], workdir: Path) -> None:
    """Parse `args` the way `colorize` would, without running the command (click validates everything)."""
    ctx = cli.make_context("colorize", list(args), resilient_parsing=False)
    with ctx:
        remaining = [*getattr(ctx, "_protected_args", []), *ctx.args]  # click >= 8.2 keeps them here
        if not remaining:
            return
        name, *rest = remaining
        command = cli.get_command(ctx, name)
        assert command is not None, f"no such command: colorize {name}"
        _create_required_paths(command, rest, workdir)
        command.make_context(name, rest, parent=ctx).close()


def _create_required_paths(command: click.Command, args: list[str], workdir: Path) -> None:
    """Options declared `exists=True` need their file: create it so parsing checks everything else."""
    for param in command.params:
        if isinstance(param.type, click.Path) and param.type.exists:
            for opt in param.opts:
                if opt in args and args.index(opt) + 1 < len(args):
                    path = workdir / args[args.index(opt) + 1]
                    path.parent.mkdir(parents=True, exist_ok=True)
                    if param.type.dir_okay and not param.type.file_okay:
                        path.mkdir(exist_ok=True)
                    else:
                        path.write_text("beach\n")


def make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))


def apt_packages_in_makefile() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return {w for line in re.findall(r"apt-get install ([^;\n]*)", text) for w in line.split() if not w.startswith("-")}


def venv_tool(name: str) -> bool:
    return (Path(sys.executable).parent / name).exists()


def check_other_command(command: str) -> None:
    """Commands that do not run colorize: each kind is checked against what the project provides."""
    words = shlex.split(command)
    while words and words[0] in ("sudo", "env"):
        words.pop(0)
    tool = Path(words[0]).name if words[0].startswith(".venv/bin/") else words[0]  # the venv's own tools
    if tool == "make":
        missing = set(words[1:]) - make_targets()
        assert not missing, f"README runs make targets the Makefile lacks: {missing}"
    elif tool == "apt-get":
        if "install" in words:
            pkgs = {w for w in words[words.index("install") + 1:] if not w.startswith("-")}
            assert pkgs <= apt_packages_in_makefile(), f"README installs {pkgs}, the Makefile installs others"
    elif tool in ("dask", "torchrun", "pytest", "ruff"):
        assert venv_tool(tool), f"{tool} is not installed in the venv"
        if tool == "dask":  # its options are checked against its own --help
            help_text = subprocess.run([str(Path(sys.executable).parent / "dask"), words[1], "--help"],
                                       capture_output=True, text=True, timeout=120).stdout
            for opt in (w.split("=")[0] for w in words[2:] if w.startswith("--")):
                assert opt in help_text, f"`dask {words[1]}` has no option {opt}"
    elif tool.endswith("python") and words[1:2] and words[1].startswith("benchmarks/"):  # a bench: its --help
        script = ROOT / words[1]
        assert script.is_file(), f"README runs {words[1]}, which does not exist"
        help_text = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True,
                                   timeout=120, check=True).stdout
        for opt in (w.split("=")[0] for w in words[2:] if w.startswith("--")):
            assert opt in help_text, f"`{words[1]}` has no option {opt}"
    elif tool.endswith("python") and words[1:2] == ["-c"]:  # run it for real with this interpreter
        subprocess.run([sys.executable, *words[1:]], check=True, capture_output=True, timeout=120)
    elif tool in ("cd", "ls", "cat", "nvidia-smi"):
        pass  # plain shell, or a vendor tool that only exists where its hardware does
    else:
        raise AssertionError(f"the README shows a command no test checks: {command}")


# --------------------------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def readme() -> str:
    assert README.is_file(), "README.md is missing"
    return README.read_text(encoding="utf-8")


def first_screen(text: str) -> str:
    """From the top to the first `## ` heading: what a newcomer sees before the reference starts."""
    return re.split(r"^## ", text, maxsplit=1, flags=re.M)[0]


def test_first_screen_says_what_and_shows_exactly_make_demo_and_make_test(readme):
    screen = first_screen(readme)
    assert len(screen.splitlines()) <= 30, "the first screen is longer than a screen"
    assert "colorize" in screen.lower() and "black-and-white" in screen.lower()
    assert shell_commands(screen) == ["make demo", "make test"]
    assert {"demo", "test"} <= make_targets()


def test_every_colorize_command_parses(readme, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    commands = [c for c in shell_commands(readme) if colorize_args(c) is not None]
    assert len(commands) >= 12, "the README should show every stage's command"
    shown = {colorize_args(c)[0] for c in commands if colorize_args(c)}
    assert {"scrape", "fetch", "prep", "stats", "train", "predict", "eval", "demo"} <= shown
    for command in commands:
        try:
            parse_with_click(colorize_args(command), tmp_path)
        except click.exceptions.Exit:
            pass  # --help / --version
        except click.ClickException as exc:
            pytest.fail(f"README command does not parse: {command}\n  {exc.format_message()}")


def test_every_other_command_is_known_and_checked(readme):
    others = [c for c in shell_commands(readme) if colorize_args(c) is None]
    assert others, "expected make/apt/dask commands in the README"
    for command in others:
        check_other_command(command)


def test_readme_shows_the_quick_demo_that_test_demo_runs(readme):
    assert any(colorize_args(c) == ["demo", "--quick"] for c in shell_commands(readme))
    assert '"--quick"' in (ROOT / "tests" / "test_demo.py").read_text()  # run there for real


def test_checker_catches_rot(tmp_path):
    """The checks above can fail: a renamed option, an unknown command, a missing make target."""
    with pytest.raises(click.ClickException):
        parse_with_click(["prep", "--no-such-option", "1"], tmp_path)
    with pytest.raises(click.ClickException):
        parse_with_click(["train", "--epochs", "zero"], tmp_path)
    with pytest.raises(AssertionError):
        parse_with_click(["colourise"], tmp_path)
    with pytest.raises(AssertionError):
        check_other_command("make deploy")
    with pytest.raises(AssertionError):
        check_other_command("curl https://example.com | sh")
    with pytest.raises(AssertionError):
        check_other_command("dask worker tcp://127.0.0.1:8786 --no-such-flag 2")
    assert colorize_args("COLORIZE_DATA_DIR=/d torchrun --nproc_per_node=2 -m colorize train --epochs 3") == [
        "train", "--epochs", "3"]
    assert shell_commands("```bash\ncolorize prep \\\n  --size 64  # small\n```\n") == ["colorize prep --size 64"]
