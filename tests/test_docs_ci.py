"""docs/ci.md: its CI files are valid YAML and every unetgan-bench command they run parses."""

import re
import shlex
from pathlib import Path

import pytest

from unetgan_bench.bench.cli import _parser

DOC = Path(__file__).resolve().parents[1] / "docs" / "ci.md"


def _commands(text: str) -> list[list[str]]:
    found = []
    for line in text.splitlines():
        for part in re.findall(r"(unetgan-bench (?:run|compare|history) [^|>&;)]*)", line):
            words = shlex.split(part.replace('"$last"', "1"))
            found.append(words[1:])
    return found


def test_ci_files_are_yaml_and_their_commands_parse():
    yaml = pytest.importorskip("yaml")
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 2
    for block in blocks:
        assert isinstance(yaml.safe_load(block), dict)
    commands = _commands("\n".join(blocks))
    assert {c[0] for c in commands} == {"run", "compare", "history"}
    for argv in commands:
        _parser().parse_args(argv)  # exits 2 on an unknown flag or sub-command
