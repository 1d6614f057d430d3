"""The README and docs/ say only what works: every `dlcli ...` command line in them parses (the
subcommand exists and takes each option and argument given), every config snippet validates,
and the README's first lines are the two commands a fresh machine runs."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest
import yaml
from typer.main import get_command

from dlcli.cli import app
from dlcli.config import config_from_text, load_config
from dlcli.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"(?<!`)`(dlcli [^`]+)`")
# a yaml snippet that is part of a config says where it goes in its first line
FRAGMENT = re.compile(r"^# (?:in|part of) (\S+?):?\s*$")
SEED = REPO / "configs" / "mnist_cnn.yaml"


def _blocks(kind: str) -> list[tuple[str, int, str]]:
    """(page name, line, text) of each fenced block of `kind` on every page."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if match.group(1) == kind:
                found.append((page.name, text.count("\n", 0, match.start()) + 2, match.group(2)))
    return found


def _command_lines() -> list[tuple[str, list[str], bool]]:
    """(where, argv after `dlcli`, whole) for each dlcli command: each line of a bash block (every
    `&&` part that runs dlcli) and each inline `dlcli ...` span of the prose. A span may leave out
    required arguments (`dlcli list-layers` names a command, not a whole line); a block may not."""
    lines = []
    for page, first, block in _blocks("bash"):
        for offset, line in enumerate(block.replace("\\\n", " ").splitlines()):
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words[:1] == ["dlcli"]:
                    lines.append((f"{page}:{first + offset}: {part.strip()}", words[1:], True))
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in INLINE.finditer(text):
            where = f"{page.name}:{text.count(chr(10), 0, match.start()) + 1}: {match.group(1)}"
            lines.append((where, shlex.split(match.group(1).replace("...", ""))[1:], False))
    return lines


COMMANDS = _command_lines()


def _click_modules():
    """click's core and exceptions modules as the installed typer uses them: the click package,
    or the copy newer typers vendor as typer._click."""
    command_class = next(k for k in type(get_command(app)).__mro__ if k.__name__ == "Command")
    package = command_class.__module__.rsplit(".", 1)[0]
    return importlib.import_module(f"{package}.core"), importlib.import_module(f"{package}.exceptions")


click_core, click_errors = _click_modules()


def test_the_pages_are_found():
    assert [p.name for p in PAGES] == ["README.md", "architecture.md", "config.md", "data.md", "evaluation.md",
                                       "reliability.md", "speed.md", "training.md"]
    assert len([c for c in COMMANDS if c[2]]) >= 15 and len(COMMANDS) >= 40


def _parse(argv: list[str], whole: bool) -> None:
    group = get_command(app)
    words = list(argv)
    if words[:1] in (["--help"], ["-h"], ["--version"]):
        return
    while words and words[0].startswith("-"):  # the group's own options: --debug
        group.make_context("dlcli", [words.pop(0), "validate"], resilient_parsing=False)
    if not words:
        return
    name = words[0]
    context = click_core.Context(group, info_name="dlcli")
    command = group.get_command(context, name)
    assert command is not None, f"no command {name!r}; the commands are {sorted(group.list_commands(context))}"
    if "--help" in words or "-h" in words:
        return
    try:
        command.make_context(name, words[1:], parent=context)
    except click_errors.MissingParameter:
        if whole:
            raise


@pytest.mark.parametrize("where, argv, whole", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_every_dlcli_command_line_in_the_docs_parses(where, argv, whole):
    try:
        _parse(argv, whole)
    except click_errors.UsageError as err:
        pytest.fail(f"{where}\n  {err.format_message()}")


def test_a_command_with_an_option_its_subcommand_lacks_fails_the_check():
    with pytest.raises(click_errors.NoSuchOption):
        _parse(["evaluate", "runs/x", "--splitt", "val"], True)
    with pytest.raises(AssertionError, match="no command 'evaluat'"):
        _parse(["evaluat", "runs/x"], True)
    with pytest.raises(click_errors.MissingParameter):
        _parse(["evaluate"], True)


def _seed_with(place: str, snippet) -> dict:
    """The seed config with `snippet` at the dotted `place`: a mapping is merged into a mapping
    there, anything else replaces what is there."""
    cfg = yaml.safe_load(SEED.read_text())
    section = cfg
    keys = place.split(".")
    for key in keys[:-1]:
        section = section.setdefault(key, {})
    last = keys[-1]
    section[last] = {**section[last], **snippet} if isinstance(snippet, dict) and isinstance(
        section.get(last), dict) else snippet
    return cfg


SECTION_SNIPPET = re.compile(r"`((?:model|data|optimizer|scheduler|loss|trainer): \{[^`]*\})`")


def _configs() -> list[tuple[str, list[str], tuple]]:
    """(where, variants, blame) for each config snippet: it is valid when one of its variants has
    no problem at or below the key path `blame` (the whole config for ()).

    A yaml block is a whole config, or a fragment whose first line says where it goes
    (`# in model.layers:`); each item of a layer list must fit somewhere in the seed's layers. A
    section written inline in the prose (`optimizer: {type: sgd, lr: 0.1}`) goes into the seed
    config, and only problems of that section count: a binary loss's snippet is not wrong because
    the seed has ten classes."""
    found = []
    for page, line, block in _blocks("yaml"):
        where = f"{page}:{line}"
        fragment = FRAGMENT.match(block.splitlines()[0])
        if fragment is None:
            found.append((where, [block], ()))
            continue
        snippet, place = yaml.safe_load(block), fragment.group(1)
        if place == "model.layers":
            seed = yaml.safe_load(SEED.read_text())["model"]["layers"]
            for n, layer in enumerate(snippet):
                variants = [yaml.safe_dump(_seed_with(place, seed[:i] + [layer] + seed[i:]))
                            for i in range(len(seed) + 1)]
                found.append((f"{where} item {n}", variants, ()))
        else:
            found.append((where, [yaml.safe_dump(_seed_with(place, snippet))], ()))
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in SECTION_SNIPPET.finditer(text):
            ((place, snippet),) = yaml.safe_load(match.group(1)).items()
            where = f"{page.name}:{text.count(chr(10), 0, match.start()) + 1}: {match.group(1)}"
            found.append((where, [yaml.safe_dump(_seed_with(place, snippet))], (place,)))
    return found


CONFIGS = _configs()


def _problems(text: str, where: str, blame: tuple) -> list[str]:
    try:
        config_from_text(text, where)
    except ConfigError as err:
        return [p.render() for p in err.problems if tuple(p.path[:len(blame)]) == blame]
    return []


def test_the_config_snippets_are_found():
    assert len(CONFIGS) >= 8


@pytest.mark.parametrize("where, variants, blame", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_every_config_snippet_in_the_docs_validates(where, variants, blame):
    tried = [_problems(text, where, blame) for text in variants]
    assert any(not problems for problems in tried), f"{where}: {tried[0]}"


def test_a_snippet_that_does_not_validate_is_told():
    assert _problems(yaml.safe_dump(_seed_with("loss", {"type": "cross_entropy", "smoothing": 0.1})), "x", ("loss",))
    assert not _problems(yaml.safe_dump(_seed_with("loss", {"type": "bce_with_logits"})), "x", ("loss",))


def test_the_readme_shows_the_seed_config_as_it_is():
    (where, text), *_ = [(f"{p}:{n}", t) for p, n, t in _blocks("yaml") if p == "README.md"]
    assert config_from_text(text, where) == load_config(SEED), "the README's seed config differs from the file"


def test_the_readme_starts_with_the_two_commands_and_ci_runs_the_second():
    lines = (REPO / "README.md").read_text().splitlines()
    first_block = lines[lines.index("```bash") + 1:lines.index("```")]
    assert lines.index("```bash") < 5
    commands = [line for line in first_block if line and not line.startswith("#")]
    assert len(commands) == 2
    assert commands[0].endswith("dlcli train configs/mnist_cnn.yaml")
    assert commands[1].endswith("python -m pytest")
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert commands[1] in ci, ".ci/run must run exactly the README's test command"


def test_the_readmes_sample_digit_is_a_seven_from_the_mnist_test_set():
    from PIL import Image
    import numpy as np

    from dlcli.data import MNIST_DIR
    from dlcli.data.sources.mnist import load_mnist_idx

    pixels = np.asarray(Image.open(REPO / "docs" / "digit_7.png"))
    test = load_mnist_idx(MNIST_DIR).test
    assert pixels.shape == (28, 28) and (pixels == test.x[0, 0].numpy()).all() and int(test.y[0]) == 7


def test_every_relative_link_in_the_docs_points_at_a_file():
    links = [(page, target) for page in PAGES
             for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8"))
             if "://" not in target]
    assert len(links) >= 6
    missing = [f"{page.name}: {target}" for page, target in links if not (page.parent / target).exists()]
    assert not missing


TRAINED = [(where, argv) for where, argv, whole in COMMANDS
           if whole and argv[:1] in (["train"], ["validate"]) and len(argv) > 1 and (REPO / argv[1]).is_file()]


def test_the_configs_the_docs_train_are_found():
    assert len(TRAINED) >= 3


@pytest.mark.parametrize("where, argv", TRAINED, ids=[t[0] for t in TRAINED])
def test_the_overrides_in_the_docs_validate_on_their_config(where, argv):
    overrides = [word for word in argv[2:] if not word.startswith("-")]
    load_config(REPO / argv[1], overrides)
