"""The docs cannot drift: the configuration page lists exactly ENV_VARS, every link and image resolves,
every doc is reachable from the README and every image in docs/images is used."""

from __future__ import annotations

import re
from pathlib import Path

from feature_platform.config import ENV_VARS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def section(markdown: str, heading: str) -> str:
    start = markdown.index(f"\n{heading}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start:end if end != -1 else None]


def table_rows(text: str) -> list[list[str]]:
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines()
            if line.startswith("|")]
    return rows[2:]  # header and separator


def test_configuration_page_lists_exactly_the_platform_variables_with_their_defaults():
    rows = table_rows(section((DOCS / "configuration.md").read_text(), "## Platform variables"))
    documented = {row[0].strip("`"): row[1] for row in rows}
    assert list(documented) == list(ENV_VARS)  # same names, same order, nothing missing or extra
    for name, (default, _) in ENV_VARS.items():
        assert documented[name] == (f"`{default}`" if default else "empty"), name


def test_test_only_variables_are_documented_apart():
    rows = table_rows(section((DOCS / "configuration.md").read_text(), "## Variables used only by the tests"))
    names = {row[0].strip("`") for row in rows}
    assert names.isdisjoint(ENV_VARS)
    used = set()
    for path in (ROOT / "feature_platform_tests").glob("*.py"):
        used |= set(re.findall(r"FEATURE_PLATFORM_TEST_[A-Z_]+", path.read_text()))
    assert used <= names, used - names


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def test_every_relative_link_and_image_resolves():
    broken = []
    for path in markdown_files():
        for target in LINK.findall(path.read_text()):
            if re.match(r"[a-z]+://|#|mailto:", target):
                continue
            if not (path.parent / target.split("#")[0]).exists():
                broken.append(f"{path.relative_to(ROOT)} -> {target}")
    assert broken == []


def test_readme_links_every_doc_and_every_image_is_used():
    readme_links = set(LINK.findall((ROOT / "README.md").read_text()))
    assert {f"docs/{p.name}" for p in DOCS.glob("*.md")} <= readme_links
    used = {(path.parent / t).resolve() for path in markdown_files() for t in LINK.findall(path.read_text())}
    images = set((DOCS / "images").glob("*.png"))
    assert images, "the browser test's screenshots illustrate the docs"
    assert {p.resolve() for p in images} <= used, "unused images in docs/images"
    assert all(p.stat().st_size < 400_000 for p in images)
