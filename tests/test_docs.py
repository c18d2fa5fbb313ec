"""Every command is documented: in the README, and with an example in its --help."""

from __future__ import annotations

from pathlib import Path

import typer.main
from typer.testing import CliRunner

from scalelab.cli import app

ROOT = Path(__file__).resolve().parents[1]


def _commands(group: object, prefix: str = "") -> list[str]:
    names = []
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a command group (db, prepare)
            names += _commands(command, f"{prefix}{name} ")
        else:
            names.append(f"{prefix}{name}")
    return names


COMMANDS = _commands(typer.main.get_command(app))


def test_the_cli_has_the_commands_the_issues_ask_for() -> None:
    expected = {
        "enqueue",
        "status",
        "requeue",
        "export",
        "import",
        "run-worker",
        "model-info",
        "probe",
        "fit",
        "plan",
        "plot",
        "launch",
        "db upgrade",
        "db copy",
        "prepare imagenet21k",
        "prepare cifar10",
        "prepare cifar100",
        "prepare tinyimagenet",
        "prepare stl10",
        "prepare imagenet1k",
    }
    assert expected <= set(COMMANDS)


def test_every_command_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in COMMANDS if f"scalelab {name}" not in readme]
    assert missing == []


def test_every_command_has_an_example_in_its_help() -> None:
    runner = CliRunner()
    for name in COMMANDS:
        result = runner.invoke(app, [*name.split(), "--help"], terminal_width=200)
        assert result.exit_code == 0, name
        assert "Example:" in result.output, f"`scalelab {name} --help` shows no example"


def test_the_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "\nmake test\n" in ci
