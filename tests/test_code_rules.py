"""Rules of the code itself, checked on the source: what a reviewer would otherwise check by reading.

- `colorize --help` (and every command's --help) loads none of numpy, Pillow, OpenCV or torch;
- no module imports another module's `_private` name, nor reaches one through an imported module;
- no function is longer than 80 lines (except the few listed below, being shortened now);
- a shared file name or schema string is spelled in one module only.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "colorize"
HEAVY = ("numpy", "PIL", "cv2", "torch")
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _run(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(PKG.parent)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_colorize_help_imports_no_heavy_library():
    env = {**os.environ, "PYTHONPATH": str(PKG.parent)}
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "colorize", "--help"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0 and "Usage: colorize" in done.stdout, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "colorize.cli" in imported  # the check sees the package's own imports
    assert sorted(m for m in imported if m.split(".")[0] in HEAVY) == []


def test_every_commands_help_imports_no_heavy_library():
    done = _run(
        "import sys\n"
        "from colorize.cli import cli\n"
        "for name in sorted(cli.commands):\n"
        "    try:\n"
        "        cli.main(args=[name, '--help'], prog_name='colorize', standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print('LOADED', sorted(m for m in {HEAVY!r} if m in sys.modules), len(cli.commands))\n")
    assert done.returncode == 0, done.stderr[-2000:]
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("LOADED [] ") and int(last.split()[-1]) >= 8, last


def _private_imports(path: Path, modules: dict[str, Path]) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found, aliases = [], {}  # aliases: local name -> a colorize module it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("colorize"):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{path.name}:{node.lineno} from {node.module} import {alias.name}")
                if f"{node.module}.{alias.name}" in modules:
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("colorize"):
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases \
                and node.attr.startswith("_") and not node.attr.startswith("__"):
            found.append(f"{path.name}:{node.lineno} {node.value.id}.{node.attr}")
    return found


def test_the_private_import_check_sees_both_forms(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from colorize.dataset.images import _reason\nfrom colorize.dataset import images as im\n"
                      "im._to_rgb(None)\n")
    assert len(_private_imports(sample, _modules())) == 2


def test_no_module_imports_another_modules_private_name():
    modules = _modules()
    found = [hit for path in modules.values() for hit in _private_imports(path, modules)]
    assert found == []


def test_no_function_is_longer_than_80_lines():
    long = []
    for path in _modules().values():
        rel = path.relative_to(PKG).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{rel}:{node.lineno} {node.name} has {lines} lines")
    assert long == []


def _string_constants(path: Path) -> list[str]:
    """Every string literal of a module but its docstrings (prose may name a file)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and id(n) not in docs]


def test_shared_file_names_and_schemas_are_spelled_in_one_module():
    for literal in ("manifest.json", "colorize.dataset/1"):
        spelled = [p.relative_to(PKG).as_posix() for p in _modules().values() if literal in _string_constants(p)]
        assert spelled == ["names.py"], (literal, spelled)
