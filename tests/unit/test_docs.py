"""The README is a guide and docs/ holds the reference: the README stays short, the pages that carry numbers name no
commit (git keeps the history), and every relative link in the README and docs/*.md reaches a file that exists (and,
with a #fragment into a Markdown file, a heading of it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
# 7 to 40 hex digits with at least one letter and one digit: a commit hash, not a word or a number
HASH = re.compile(r"(?<![0-9A-Za-z_])(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}(?![0-9A-Za-z_])")


def prose(text: str) -> str:
    """The text outside fenced code blocks (a `[x](y)` in a shell or YAML example is no link)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set:
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*$", prose(page.read_text()), re.M)}


def test_readme_is_at_most_300_lines():
    n = len(README.read_text().splitlines())
    assert n <= 300, f"README.md has {n} lines; move reference material to docs/"


@pytest.mark.parametrize("page", [README, ROOT / "docs" / "benchmarks.md"], ids=lambda p: p.name)
def test_no_commit_hashes(page):
    found = HASH.findall(page.read_text())
    assert not found, f"{page.name} names commits {found}: date the row and give its command; git keeps the history"


def test_the_hash_pattern():
    assert HASH.findall("fresh clone of `2ea31fd` and 2ea31fd00375bc6215aefeb646ef1b5fbc61a767") == [
        "2ea31fd",
        "2ea31fd00375bc6215aefeb646ef1b5fbc61a767",
    ]
    assert not HASH.findall("1,281,167 images, 1234567 steps, a defaced page, 0x1f, block3, 20894.5")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target}: no heading #{fragment} in {dest.relative_to(ROOT)}")
    assert not broken, broken


def test_slug():
    assert slug("Exit codes and signals") == "exit-codes-and-signals"
    assert (
        slug("Which tracking store, from how many concurrent trials")
        == "which-tracking-store-from-how-many-concurrent-trials"
    )
    assert slug("The `ssl-ray` CLI") == "the-ssl-ray-cli"


def test_the_readme_gives_the_two_commands():
    """Its shell commands are the two commands, set up and run, set up and test (what they do: tests/unit/test_ci.py
    and tests/e2e/test_setup.py), and the scripts they name exist."""
    blocks = re.findall(r"```bash\n(bash scripts/\w+\.sh)[^\n]*\n```", README.read_text())
    assert blocks == ["bash scripts/run.sh", "bash scripts/test.sh"], blocks
    assert all((ROOT / b.split()[1]).is_file() for b in blocks)


def measurement_rows(text: str) -> list:
    """The cells of each data row of a Markdown table whose header names a ``command`` column: ``[(header, cells)]``."""
    rows, header = [], None
    for line in text.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = [c.lower() for c in cells]
        elif not set(line) <= set("|- :"):
            rows.append((header, cells))
    return rows


def test_every_measurement_names_its_command():
    rows = measurement_rows((ROOT / "docs" / "benchmarks.md").read_text())
    assert len(rows) >= 10, "docs/benchmarks.md lost its table"
    for header, cells in rows:
        assert "command" in header and "date" in header, header
        command, date = cells[header.index("command")], cells[header.index("date")]
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", date), cells[:2]
        assert re.search(r"`[^`]*(python|bash|pytest|\.venv/bin/|ssl-ray)[^`]*`", command), cells[:2]


def test_every_result_in_the_readme_names_its_command():
    """Each bullet of the README's Results section that gives a number starts with the command that produced it."""
    section = re.search(r"^## Results\n(.*?)^## ", README.read_text(), re.S | re.M).group(1)
    bullets = re.findall(r"^- (.*?)(?=^- |^\S|\Z)", section, re.S | re.M)
    numbered = [b for b in bullets if re.search(r"\d\.\d|\d×|\d+ min", b)]
    assert numbered, "the README's Results section gives no number"
    for b in numbered:
        assert re.match(r"`(bash scripts/|\.venv/bin/python )[^`]+`", b), b[:80]
