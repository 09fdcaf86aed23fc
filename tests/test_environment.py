"""environment.yml (conda) must wrap exactly the pinned requirements.txt (the single source of truth)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def requirement_lines(text: str) -> list[str]:
    """Requirement lines of a requirements file: comments (whole-line and trailing) and blanks dropped."""
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def conda_env() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def conda_pip_list(env: dict) -> list[str]:
    pips = [dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict) and "pip" in dep]
    assert len(pips) == 1, "environment.yml needs exactly one `pip:` section"
    return [str(item).strip() for item in pips[0]]


def test_requirement_lines_parser():
    text = "# header\n\ntorch==2.13.0  # comment\n  numpy==2.4.6\n#numpy==1.0\n"
    assert requirement_lines(text) == ["torch==2.13.0", "numpy==2.4.6"]


def test_requirements_are_pinned():
    reqs = requirement_lines((ROOT / "requirements.txt").read_text())
    assert reqs, "requirements.txt lists no requirements"
    unpinned = [r for r in reqs if "==" not in r]
    assert not unpinned, f"unpinned requirements: {unpinned}"
    assert len(set(reqs)) == len(reqs), "duplicate lines in requirements.txt"


def test_environment_pip_list_equals_requirements():
    reqs = requirement_lines((ROOT / "requirements.txt").read_text())
    pip = conda_pip_list(conda_env())
    assert "-e ." in pip, "environment.yml must install the package itself (`-e .`)"
    listed = [p for p in pip if p != "-e ."]
    assert not any(p.startswith("-r") for p in listed), "list the pins explicitly, not `-r requirements.txt`"
    assert len(set(listed)) == len(listed), "duplicate entries in environment.yml's pip list"
    missing = sorted(set(reqs) - set(listed))
    extra = sorted(set(listed) - set(reqs))
    assert not missing and not extra, (
        f"environment.yml and requirements.txt disagree: missing from environment.yml {missing}, "
        f"not in requirements.txt {extra}"
    )


def test_environment_pins_python_and_pip():
    env = conda_env()
    assert env["name"] == "lopcore"
    assert "conda-forge" in env["channels"]
    deps = [d for d in env["dependencies"] if isinstance(d, str)]
    pythons = [d for d in deps if d.replace(" ", "").startswith("python=")]
    assert len(pythons) == 1, f"python must be pinned exactly once, got {pythons}"
    version = pythons[0].split("=", 1)[1]
    assert version.count(".") >= 1 and version.replace(".", "").isdigit(), f"python pin too loose: {pythons[0]}"
    assert "pip" in deps


@pytest.mark.parametrize("edit", ["drop", "add", "change"])
def test_check_detects_one_sided_edits(edit):
    """The comparison above fails when either file changes alone."""
    reqs = requirement_lines((ROOT / "requirements.txt").read_text())
    listed = [p for p in conda_pip_list(conda_env()) if p != "-e ."]
    changed = {
        "drop": listed[1:],
        "add": listed + ["rich==1.0"],
        "change": [listed[0].split("==")[0] + "==0.0.1"] + listed[1:],
    }[edit]
    assert set(changed) != set(reqs)
