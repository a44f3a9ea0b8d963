"""Every relative link in README.md and docs/*.md points to a file that exists, and every
`#anchor` into a Markdown file to one of its headings (GitHub's heading ids)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# [text](target): the target up to the closing parenthesis (no spaces, no titles used here)
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"#{1,6} (.+?)\s*#*$")
FENCE = re.compile(r"^```.*?^```", flags=re.DOTALL | re.MULTILINE)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def without_code(markdown: str) -> str:
    """The text outside code blocks and spans (a `](...)` in a code sample is not a link)."""
    return INLINE_CODE.sub("", FENCE.sub("", markdown))


def heading_ids(markdown: str) -> set[str]:
    """The ids GitHub gives the headings: lower case, punctuation but `-` and `_` dropped,
    spaces to `-`; a repeated id gets `-1`, `-2` ..."""
    seen: dict[str, int] = {}
    ids = set()
    for line in FENCE.sub("", markdown).splitlines():  # a code span's text is in the id
        match = HEADING.match(line)
        if match is None:
            continue
        base = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
        count = seen.get(base, 0)
        seen[base] = count + 1
        ids.add(base if count == 0 else f"{base}-{count}")
    return ids


def broken_links(path: Path) -> list[str]:
    broken = []
    for target in LINK.findall(without_code(path.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        destination = (path.parent / file_part).resolve() if file_part else path
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif (
            anchor
            and destination.suffix == ".md"
            and anchor not in heading_ids(destination.read_text())
        ):
            broken.append(f"{target}: no such heading")
    return broken


def test_heading_ids_follow_github() -> None:
    text = "# Outdial\n## The call body (`POST /v1/api/call`)\n## Tests\n## Tests\n```\n# no\n```"
    assert heading_ids(text) == {"outdial", "the-call-body-post-v1apicall", "tests", "tests-1"}


def test_a_broken_link_is_found(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n")
    page.write_text(
        "[a](other.md) [b](other.md#other) [c](missing.md) [d](other.md#nope) [e](#here)\n"
        "[f](https://example.com/x) `[g](in-code.md)`\n```\n[h](fenced.md)\n```\n# Here\n"
    )
    assert broken_links(page) == [
        "missing.md: no such file",
        "other.md#nope: no such heading",
    ]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files_and_headings(path: Path) -> None:
    assert broken_links(path) == []
