"""Docs are tested like code: every CLI command has help text and a README entry."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from convostore.cli import cli

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    for name, command in sorted(group.commands.items()):
        path = f"{prefix}{name}"
        found.append((path, command))
        if isinstance(command, click.Group):
            found.extend(_commands(command, path + " "))
    return found


COMMANDS = _commands(cli)


def test_the_cli_has_its_commands():
    names = {path for path, _ in COMMANDS}
    for expected in ("list", "show", "chain", "tree", "search", "stats", "export", "import", "db upgrade", "demo"):
        assert expected in names


@pytest.mark.parametrize("path,command", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_command_has_help_text(path, command):
    assert (command.help or "").strip(), f"`convostore {path}` has no help text"
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert (param.help or "").strip(), f"`convostore {path}` option {param.opts} has no help text"


@pytest.mark.parametrize("path,command", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_command_is_in_the_readme_reference(path, command):
    reference = README.split("## Command reference", 1)
    assert len(reference) == 2, "README has no '## Command reference' section"
    pattern = rf"^###\s+`convostore {re.escape(path)}\b"
    assert re.search(pattern, reference[1], re.MULTILINE), f"`convostore {path}` is missing from the README's command reference"


def test_readme_opens_with_the_two_commands():
    head = "\n".join(README.splitlines()[:25])
    assert "convostore demo" in head
    assert "pytest" in head
