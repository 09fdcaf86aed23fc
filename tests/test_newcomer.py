"""A newcomer's first minutes: clone the repository into an empty folder and run the README's two
commands exactly as written. Takes minutes (a fresh .venv, the data, MathJax, the whole suite), so it
runs only with LOPCORE_NEWCOMER=1:

    LOPCORE_NEWCOMER=1 .venv/bin/pytest tests/test_newcomer.py

The clone is the repository's HEAD plus the working tree's uncommitted changes (modified and new files
that git does not ignore, deletions applied), i.e. what the next commit will hold. The inner
`make test` runs without LOPCORE_NEWCOMER, so it does not start this test again.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("LOPCORE_NEWCOMER") != "1",
        reason="minutes long: set LOPCORE_NEWCOMER=1 to clone and run the README's commands",
    ),
]


def readme_commands() -> list[str]:
    """The commands of the README's "The two commands" block, as written."""
    section = (ROOT / "README.md").read_text().split("## The two commands", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def fresh_clone(target: Path) -> Path:
    git("clone", "--quiet", str(ROOT), str(target), cwd=target.parent)
    changed = git("ls-files", "--modified", "--others", "--exclude-standard", "-z").split("\0")
    deleted = set(git("ls-files", "--deleted", "-z").split("\0"))
    for name in filter(None, changed):
        if name in deleted:
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target / name)
    for name in filter(None, deleted):
        (target / name).unlink(missing_ok=True)
    return target


def newcomer_env() -> dict[str, str]:
    """The caller's environment without this project's settings or an active virtual environment."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LOPCORE_", "PYTEST_", "VIRTUAL_ENV", "CONDA_PREFIX")) and k not in ("PYTHONPATH", "CI")
    }
    venv = str(ROOT / ".venv")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(venv))
    return env


def test_readme_commands_work_on_a_fresh_clone(tmp_path):
    commands = readme_commands()
    assert commands == ["make book", "make test"], commands
    clone = fresh_clone(tmp_path / "lopcore")
    assert not (clone / ".venv").exists() and not (clone / "_build").exists()
    env = newcomer_env()
    timings = {}
    for command in commands:
        started = time.monotonic()
        result = subprocess.run(command, shell=True, cwd=clone, env=env, capture_output=True, text=True, timeout=3600)
        timings[command] = round(time.monotonic() - started)
        assert result.returncode == 0, (
            f"`{command}` failed on a fresh clone (exit {result.returncode}):\n"
            f"{result.stdout[-5000:]}\n{result.stderr[-5000:]}"
        )
        if command == "make test":
            summary = result.stdout.strip().splitlines()[-1]
            assert re.search(r"\d+ passed", summary) and "failed" not in summary, summary
    assert (clone / "_build" / "html" / "notebooks" / "fig2.html").is_file()
    print(f"newcomer timings (s): {timings}")
