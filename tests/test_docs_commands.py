"""Every command and option that README.md and docs/*.md name exists.

A reader copies commands from the documentation; an option that was renamed or never existed
fails them on the first try. This test reads every fenced shell block and every inline code span:

- ``talkinghead CMD [SUB] ... --opt`` must name a real sub-command, and each ``--opt`` on that
  command line must be one of that sub-command's options (from the real argparse parser);
- ``python benchmarks/x.py --opt`` / ``python3 scripts/x.py --opt``: the script exists and
  defines ``--opt``;
- an option in running text (an inline code span such as `--paste-back`) must belong to some
  talkinghead command or project script.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from talkinghead.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
# Other programs whose options the pages show (pip, torchrun, pytest, ...): not checked.
FOREIGN = ("pip", "python -m pip", "torchrun", "tensorboard", "pytest", "python -m pytest", "make", "apt-get", "git")
# A library module run as a program (`python -m talkinghead.data.x`): every command goes through `talkinghead`.
MODULE_RUN = re.compile(r"python3?\s+-m\s+(talkinghead\.[\w.]+)")
SCRIPT = re.compile(r"(?:^|\s)(?:python3?|\.venv/bin/python)\s+((?:benchmarks|scripts)/\w+\.py)")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return set(parser._option_string_actions)


def _all_options(parser: argparse.ArgumentParser) -> set[str]:
    found = _options(parser)
    for sub in _subparsers(parser).values():
        found |= _all_options(sub)
    return found


def _script_options() -> dict[str, str]:
    """Project script -> its source text (an option it defines appears there as "--opt")."""
    return {str(p.relative_to(REPO)): p.read_text() for folder in ("benchmarks", "scripts") for p in (REPO / folder).glob("*.py")}


def _command_lines(text: str) -> list[str]:
    """Shell command lines of every fenced block (continuations joined, comments cut)."""
    lines = []
    for lang, body in FENCE.findall(text):
        if lang not in ("", "bash", "sh", "shell", "console"):
            continue
        joined = re.sub(r"\\\n\s*", " ", body)
        for line in joined.splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line).strip()
            if line:
                lines.extend(part.strip() for part in re.split(r"&&|;|\|", line) if part.strip())
    return lines


def _check_talkinghead(tokens: list[str], parser: argparse.ArgumentParser, where: str) -> list[str]:
    problems = []
    at = next(i for i, t in enumerate(tokens) if t == "talkinghead" or t.endswith("/talkinghead"))
    rest = tokens[at + 1:]
    current, path = parser, ["talkinghead"]
    while rest and _subparsers(current) and not rest[0].startswith("-"):
        name = rest.pop(0)
        subs = _subparsers(current)
        if name not in subs:
            return [f"{where}: `{' '.join(path)} {name}` is not a command (choices: {', '.join(subs)})"]
        current, path = subs[name], path + [name]
    known = _options(current)
    for token in rest:
        option = token.split("=", 1)[0]
        if OPTION.fullmatch(option) and option not in known:
            problems.append(f"{where}: `{' '.join(path)}` has no option {option}")
    return problems


def _check_page(page: Path) -> list[str]:
    parser = build_parser()
    scripts = _script_options()
    every_option = _all_options(parser) | {o for source in scripts.values() for o in OPTION.findall(source)}
    text = page.read_text()
    where = str(page.relative_to(REPO))
    problems = []
    for line in _command_lines(text):
        try:
            tokens = shlex.split(line)
        except ValueError:
            tokens = line.split()
        if any(t == "talkinghead" or t.endswith("/talkinghead") for t in tokens):
            problems += _check_talkinghead(tokens, parser, f"{where}: {line!r}")
        for module in MODULE_RUN.findall(line):
            problems.append(f"{where}: {line!r} runs the module {module}; use its `talkinghead` command")
        script = SCRIPT.search(line)
        if script:
            name = script.group(1)
            if name not in scripts:
                problems.append(f"{where}: {line!r} runs {name}, which does not exist")
            else:
                for option in OPTION.findall(line[script.end():]):
                    if f'"{option}"' not in scripts[name]:
                        problems.append(f"{where}: {name} has no option {option}")
    prose = FENCE.sub("", text)
    for span in INLINE.findall(prose):
        if span.startswith(FOREIGN):
            continue
        problems += [f"{where}: `{span}` runs the module {m}; use its `talkinghead` command" for m in MODULE_RUN.findall(span)]
        tokens = span.split()
        if tokens and (tokens[0] == "talkinghead" or tokens[0].endswith("/talkinghead")):
            problems += _check_talkinghead(tokens, parser, f"{where}: `{span}`")
            continue
        for option in OPTION.findall(span):
            if option not in every_option:
                problems.append(f"{where}: `{span}` names {option}, which no command or script has")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_command_and_option_the_page_names_exists(page):
    problems = _check_page(page)
    assert not problems, "\n".join(problems)


def test_the_check_catches_a_made_up_option_and_command(tmp_path):
    page = REPO / "docs" / "_probe.md"
    page.write_text("```bash\ntalkinghead animate --source a.jpg --no-such-option\ntalkinghead frobnicate\n"
                    "python -m talkinghead.data.sr_prepare a b c\n```\n"
                    "and `--another-made-up-one` in prose\n")
    try:
        problems = "\n".join(_check_page(page))
    finally:
        page.unlink()
    assert "has no option --no-such-option" in problems
    assert "`talkinghead frobnicate` is not a command" in problems
    assert "runs the module talkinghead.data.sr_prepare" in problems
    assert "--another-made-up-one" in problems


def test_readme_starts_with_the_two_commands():
    text = (REPO / "README.md").read_text()
    first_block = FENCE.search(text).group(2).splitlines()
    assert text.index("```") < 40, "the commands must be on the README's first screen"
    assert [line.split()[:2] for line in first_block[:2]] == [["make", "demo"], ["make", "test"]]


def test_the_readme_python_snippet_animates_a_photo(monkeypatch):
    """The README's Python block, run as written on a bundled photo and video (first 3 frames)."""
    import itertools

    import talkinghead.data.video as video

    snippet = next(body for lang, body in FENCE.findall((REPO / "README.md").read_text()) if lang == "python")
    original = video.read_video_frames
    monkeypatch.setattr(video, "read_video_frames", lambda *a, **k: itertools.islice(original(*a, **k), 3))
    snippet = snippet.replace("me.jpg", str(REPO / "examples/portraits/liveportrait_s12.jpg"))
    snippet = snippet.replace("someone_talking.mp4", str(REPO / "examples/videos/liveportrait_d19.mp4"))
    snippet += "\n        images.append(frame.image)\n"
    namespace = {"images": []}
    exec(compile(snippet, "README.md", "exec"), namespace)
    assert len(namespace["images"]) == 3 and namespace["images"][0].shape == (256, 256, 3)
