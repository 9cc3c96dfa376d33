"""Docs that match the code, checked without servers.

Code and docs cite the docs in three forms, and each must resolve:

- a path, ``docs/storage.md``: the file exists;
- a section of one, ``(docs/ARCHITECTURE.md, rule 6)``, ``(docs/pipelines.md, chunks)``,
  ``(ARCHITECTURE.md rule 7)``, ``docs/ARCHITECTURE.md ("What must stay true")``: ``rule N``
  is item N of the file's "Rules"; any other words begin a heading or a bolded term of the
  file (a leading "the", a trailing "table" and case aside: "step table" is the heading
  "Step → activity → policy → adapter → queue", which holds the step table);
- a Markdown link, ``[pipelines](pipelines.md#chunked-encoding)``: the file exists, relative
  to the linking file, and so does the heading the anchor names.
"""

from __future__ import annotations

import bisect
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent
SKIP_DIRS = {
    ".git",
    ".venv",
    "node_modules",
    "var",
    "build",
    "dist",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".cache",
    "histories",
}
TEXT_SUFFIXES = {".py", ".md", ".toml", ".ini", ".cfg", ".yml", ".yaml", ".env", ".sh", ".js"}
TEXT_NAMES = {"Makefile", "Dockerfile", ".env.example"}

# A path under docs/ (not a relative link's tail: those are Markdown links, checked as such).
DOC_PATH = re.compile(r"(?<![\w./-])docs/[\w-]+(?:/[\w-]+)*\.md\b")
SECTION = re.compile(
    r"(?<![\w./-])(?P<docs>docs/)?(?P<file>[A-Za-z][\w-]*\.md)"
    r"(?:,\s*(?P<section>\"[^\"]+\"|[^()\"]+?)\)"
    r"|\s+(?P<rule>rule \d+)\b"
    r"|\s+\(\"(?P<quoted>[^\"]+)\"\))"
)
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
BOLD_TERM = re.compile(r"^\s*(?:[-*]\s+|\d+\.\s+)?\*\*(.+?)\*\*", re.M)
RULE_ITEM = re.compile(r"^(\d+)\.\s", re.M)
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
# Where a citation continues on the next line: a comment's `#`, a docstring's indent.
LINE_BREAK = re.compile(r"[ \t]*\n[ \t]*(?:#[ \t]*)?")


@dataclass(frozen=True)
class Citation:
    where: str
    file: Path
    section: str  # "rule 6", or words that begin a heading or a bolded term

    def __str__(self) -> str:
        return f"{self.where}: {self.file.relative_to(REPO)}, {self.section!r}"


def sources() -> list[Path]:
    """Every text file of the repository (code, docs, config), this one aside."""
    found = []
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info"))
        for name in sorted(files):
            path = Path(folder) / name
            if path.suffix in TEXT_SUFFIXES or name in TEXT_NAMES:
                found.append(path)
    this = Path(__file__).resolve()
    return [path for path in found if path != this]


def where(path: Path, text: str, offset: int) -> str:
    return f"{path.relative_to(REPO)}:{text.count(chr(10), 0, offset) + 1}"


def doc_paths() -> list[tuple[str, Path]]:
    return [
        (where(path, text, m.start()), REPO / m.group())
        for path in sources()
        for text in [path.read_text(encoding="utf-8", errors="replace")]
        for m in DOC_PATH.finditer(text)
    ]


def joined(raw: str) -> tuple[str, list[int]]:
    """The text with its lines joined, so a citation that wraps reads as one; and where in
    the joined text each line break was, to tell a citation's line."""
    text: list[str] = []
    breaks: list[int] = []
    last = length = 0
    for m in LINE_BREAK.finditer(raw):
        text += [raw[last : m.start()], " "]
        length += m.start() - last
        breaks.append(length)
        length += 1
        last = m.end()
    text.append(raw[last:])
    return "".join(text), breaks


def section_citations() -> list[Citation]:
    found = []
    for path in sources():
        text, breaks = joined(path.read_text(encoding="utf-8", errors="replace"))
        for m in SECTION.finditer(text):
            section = m["section"] or m["rule"] or m["quoted"]
            if not section:
                continue
            target = REPO / "docs" / m["file"]
            if not m["docs"] and not target.is_file():
                target = REPO / m["file"]
            line = bisect.bisect_right(breaks, m.start()) + 1
            at = f"{path.relative_to(REPO)}:{line}"
            found.append(Citation(at, target, section.strip().strip('"')))
    return found


def citation_form(citation: Citation) -> str:
    if re.fullmatch(r"rule \d+", citation.section):
        return "rule"
    if citation.section.endswith(" table"):
        return "table"
    return "words" if " " in citation.section else "word"


def words(text: str) -> list[str]:
    found = re.sub(r"[^a-z0-9]+", " ", text.lower()).split()
    return found[1:] if found[:1] == ["the"] else found


@cache
def names(doc: Path) -> list[list[str]]:
    """A doc's headings and bolded terms, as words."""
    text = FENCE.sub("", doc.read_text(encoding="utf-8"))
    return [words(name) for name in HEADING.findall(text) + BOLD_TERM.findall(text)]


@cache
def rules(doc: Path) -> set[int]:
    """The numbers of the items under the doc's "Rules" heading."""
    text = doc.read_text(encoding="utf-8")
    found = re.search(r"^#+\s+Rules\b.*?$(.*?)(?=^#+\s|\Z)", text, re.M | re.S)
    return {int(n) for n in RULE_ITEM.findall(found[1])} if found else set()


def resolves(citation: Citation) -> bool:
    if not citation.file.is_file():
        return False
    rule = re.fullmatch(r"rule (\d+)", citation.section)
    if rule:
        return int(rule[1]) in rules(citation.file)
    cited = words(citation.section)
    if cited[-1:] == ["table"]:
        cited = cited[:-1]
    return bool(cited) and any(name[: len(cited)] == cited for name in names(citation.file))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def broken_links(doc: Path) -> list[str]:
    text = FENCE.sub("", doc.read_text(encoding="utf-8"))
    broken = []
    for m in LINK.finditer(text):
        target = m[1]
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, mailto:
            continue
        file, _, anchor = target.partition("#")
        linked = (doc.parent / file).resolve() if file else doc
        if not linked.exists():
            broken.append(f"{doc.relative_to(REPO)}: {target} (no such file)")
        elif anchor and linked.suffix == ".md":
            headings = HEADING.findall(FENCE.sub("", linked.read_text(encoding="utf-8")))
            if anchor not in {slug(h) for h in headings}:
                broken.append(f"{doc.relative_to(REPO)}: {target} (no such heading)")
    return broken


def test_every_cited_docs_path_exists():
    cited = doc_paths()
    assert len({path for _, path in cited}) >= 5, cited  # the scan finds what is there
    missing = [f"{at}: {path.relative_to(REPO)}" for at, path in cited if not path.is_file()]
    assert not missing, "cited docs that do not exist:\n" + "\n".join(missing)


def test_every_cited_section_names_a_heading_a_term_or_a_rule():
    cited = section_citations()
    # Every form is found: a scan that silently matched nothing would pass.
    assert len(cited) >= 20, cited
    assert {"rule", "table", "words", "word"} <= {citation_form(c) for c in cited}, cited
    broken = [str(c) for c in cited if not resolves(c)]
    assert not broken, "citations of sections that do not exist:\n" + "\n".join(broken)


def test_every_markdown_link_reaches_a_file_and_its_heading():
    docs = [path for path in sources() if path.suffix == ".md"]
    broken = [problem for doc in docs for problem in broken_links(doc)]
    assert not broken, "\n".join(broken)
