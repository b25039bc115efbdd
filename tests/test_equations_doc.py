"""docs/equations.md resolves, and every "Eq. N" in src/ names its paper and has a row there.

The doc maps each paper equation to ``path::qualname`` references (see its header); a code
citation reads ``PAPER Eq. N`` (``LSR Eq. 3``, ``FSTH §3.2 Eq. 5``, ``MetaPortrait Eq. 1-2``).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "equations.md"
SRC = REPO / "src" / "talkinghead"

HEADING = re.compile(r"^## (\w+)")
ROW = re.compile(r"^\|\s*(\d+)\s*\|")
REFERENCE = re.compile(r"`(src/[\w/]+\.py)(?:::([\w.]+))?`")
CITATION = re.compile(r"\bEqs?\.\s*\(?\d")
NAMED = re.compile(r"\b(?P<paper>\w+) (?:§[\d.]+ )?(?P<eq>Eqs?\.) (?P<numbers>\d+(?:\s*(?:-|,|and|/)\s*\d+)*)")
# The numbered equations of the three method papers (../shared/papers/).
METHOD_EQUATIONS = {"LSR": range(1, 5), "FSTH": range(1, 11), "MetaPortrait": range(1, 5)}


def doc_rows() -> dict[str, dict[int, str]]:
    """Paper name -> equation number -> its table row."""
    papers: dict[str, dict[int, str]] = {}
    current = None
    for line in DOC.read_text().splitlines():
        heading = HEADING.match(line)
        if heading:
            current = heading.group(1)
            papers[current] = {}
        elif current is not None and (row := ROW.match(line)):
            papers[current][int(row.group(1))] = line
    return papers


def equation_numbers(text: str) -> list[int]:
    """``"1-3"`` -> [1, 2, 3]; ``"1, 3"``, ``"4 and 6"``, ``"1 / 3"`` -> both numbers."""
    numbers: list[int] = []
    for part in re.split(r"\s*(?:,|and|/)\s*", text.strip()):
        first, _, last = part.partition("-")
        numbers += range(int(first), int(last or first) + 1)
    return numbers


def resolve(path: str, qualname: str | None):
    """The module of ``path`` (under src/), and the object ``qualname`` names in it."""
    assert (REPO / path).is_file(), f"docs/equations.md: {path} does not exist"
    module = importlib.import_module(".".join(Path(path).relative_to("src").with_suffix("").parts))
    target = module
    for name in qualname.split(".") if qualname else []:
        assert hasattr(target, name), f"docs/equations.md: {path}::{qualname}: {name!r} not found"
        target = getattr(target, name)
    return target


def test_every_reference_in_the_doc_resolves():
    references = REFERENCE.findall(DOC.read_text())
    assert len(references) > 50  # the doc was parsed (an unparsed doc would pass vacuously)
    for path, qualname in references:
        target = resolve(path, qualname or None)
        if qualname:
            assert callable(target) or isinstance(target, dict), f"{path}::{qualname} is not code"


def test_the_method_papers_have_every_equation_with_code():
    rows = doc_rows()
    for paper, numbers in METHOD_EQUATIONS.items():
        assert sorted(rows[paper]) == list(numbers), f"docs/equations.md: {paper} rows {sorted(rows[paper])}"
        for number, row in rows[paper].items():
            assert REFERENCE.search(row), f"docs/equations.md: {paper} Eq. {number} names no code"


def test_every_equation_cited_in_src_names_its_paper_and_has_a_row():
    rows = doc_rows()
    problems, cited = [], 0
    for path in sorted(SRC.rglob("*.py")):
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            named = {m.start("eq"): m for m in NAMED.finditer(line)}
            for citation in CITATION.finditer(line):
                cited += 1
                where = f"{path.relative_to(REPO)}:{lineno}"
                match = named.get(citation.start())
                if match is None or match.group("paper") not in rows:
                    problems.append(f"{where}: names no paper of docs/equations.md: {line.strip()}")
                    continue
                paper = match.group("paper")
                missing = [n for n in equation_numbers(match.group("numbers")) if n not in rows[paper]]
                if missing:
                    problems.append(f"{where}: {paper} Eq. {missing} has no row in docs/equations.md")
    assert cited > 90  # the code cites about a hundred equations; far fewer means the scan broke
    assert not problems, "\n".join(problems)


def test_the_checks_catch_an_unnamed_or_unknown_citation():
    rows = doc_rows()
    assert equation_numbers("1-3") == [1, 2, 3] and equation_numbers("4 and 6") == [4, 6]
    assert equation_numbers("1, 3") == [1, 3]
    for line, expected in [("(Eq. 4)", None), ("of LSR Eq. 2", ("LSR", [2])),
                           ("(FSTH §3.3 Eq. 8)", ("FSTH", [8])), ("MetaPortrait Eq. 1-2:", ("MetaPortrait", [1, 2]))]:
        citation = CITATION.search(line)
        match = {m.start("eq"): m for m in NAMED.finditer(line)}.get(citation.start())
        found = (match.group("paper"), equation_numbers(match.group("numbers"))) if match else None
        assert found == expected, line
        if found:
            assert all(n in rows[found[0]] for n in found[1])
    assert 5 not in rows["LSR"]  # "LSR Eq. 5" would be reported: LSR has four equations
