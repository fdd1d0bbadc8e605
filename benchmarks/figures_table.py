"""The table of current figures at the top of docs/BENCHMARKS.md, made from
benchmarks/figures.json.

BENCHMARKS.md opens with the latest figure of each kind, per device, and
keeps below it the journal: every measurement in the order it was made,
with its settings and what it showed. The table is written between the
markers ``<!-- figures:start -->`` and ``<!-- figures:end -->``; nothing
else in the file is touched.

Each figure in figures.json names its ``device``, its ``date``, the
``command`` that measured it (null where the journal does not name one) and
the journal ``section`` (a heading's text, without its ``#``) it comes from.
A figure is copied, never made up: its ``value`` must appear word for word
in that section of the journal, and its date in that section too.

    python benchmarks/figures_table.py          # write the table
    python benchmarks/figures_table.py --check  # exit 1 if the table or a figure is out of date

Standard library only: it runs without the project's environment.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIGURES = os.path.join(ROOT, "benchmarks", "figures.json")
DOCUMENT = os.path.join(ROOT, "docs", "BENCHMARKS.md")
START, END = "<!-- figures:start -->", "<!-- figures:end -->"
FIELDS = ("name", "value", "device", "date", "command", "section")
OPTIONAL = ("command",)  # null: the journal does not say which command measured it
HEADING = re.compile(r"^(#{2,6})\s+(.*?)\s*$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def load(path: str = FIGURES) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)["figures"]


def split(document: str) -> tuple[str, str, str]:
    """The document before the table (start marker included), the table, and the rest (end marker on)."""
    start, end = document.find(START), document.find(END)
    if start < 0 or end < 0 or end < start or document.count(START) != 1 or document.count(END) != 1:
        raise ValueError(f"docs/BENCHMARKS.md needs one {START} and one {END} after it")
    start += len(START)
    return document[:start], document[start:end], document[end:]


def sections(journal: str) -> dict[str, str]:
    """Each heading's text, and its section: the heading and the lines up to the next heading."""
    found: dict[str, list[str]] = {}
    current: Optional[list[str]] = None
    for line in journal.splitlines():
        match = HEADING.match(line)
        if match:
            current = found.setdefault(match.group(2), [])
        if current is not None:
            current.append(line)
    return {title: "\n".join(lines) for title, lines in found.items()}


def problems(figures: list[dict], journal: str) -> list[str]:
    """What is wrong with the figures, as sentences: a missing field, a section
    the journal does not have, a value or date that section does not state."""
    found = sections(journal)
    wrong = []
    for index, figure in enumerate(figures):
        label = f"figure {index + 1} ({figure.get('name', 'no name')!r})"
        missing = [f for f in FIELDS if not (f in OPTIONAL and f in figure and figure[f] is None)
                   and (not isinstance(figure.get(f), str) or not figure[f].strip())]
        if missing:
            wrong.append(f"{label}: {', '.join(missing)} missing or empty")
            continue
        if not DATE.match(figure["date"]):
            wrong.append(f"{label}: the date {figure['date']!r} is not YYYY-MM-DD")
        text = found.get(figure["section"])
        if text is None:
            wrong.append(f"{label}: the journal has no section {figure['section']!r}")
            continue
        if figure["value"] not in text:
            wrong.append(f"{label}: {figure['value']!r} is not in the journal's section {figure['section']!r}")
        if figure["date"] not in text:
            wrong.append(f"{label}: the date {figure['date']} is not in the journal's section {figure['section']!r}")
    return wrong


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _command(command: Optional[str]) -> str:
    return "not named in the journal" if command is None else f"`{_cell(command)}`"


def table(figures: list[dict]) -> str:
    """The markdown between the markers: a heading, then one table per device
    (in the order devices first appear in figures.json), each followed by
    the journal sections its rows come from (numbered once for the page)."""
    devices: dict[str, list[dict]] = {}
    for figure in figures:
        devices.setdefault(figure["device"], []).append(figure)
    numbers: dict[str, int] = {}
    lines = ["", "<!-- Made by benchmarks/figures_table.py from benchmarks/figures.json: edit those, not this. -->",
             "", "## Current figures", "",
             "The latest figure of each kind that the journal below states, by device. Each row names the",
             "command that measured it and the journal section (§) with its settings and what else it showed.", ""]
    for device, rows in devices.items():
        lines += [f"### {device}", "", "| figure | value | date | measured with | journal |", "|---|---|---|---|---|"]
        cited: list[str] = []
        for f in rows:
            if f["section"] not in numbers:
                numbers[f["section"]] = len(numbers) + 1
            if f["section"] not in cited:
                cited.append(f["section"])
            lines.append(f"| {_cell(f['name'])} | {_cell(f['value'])} | {f['date']} | {_command(f['command'])} | "
                         f"§{numbers[f['section']]} |")
        lines.append("")
        lines += [f"- §{numbers[section]}: {section}" for section in cited]
        lines.append("")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Write the table of current figures into docs/BENCHMARKS.md.")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if the table is out of date "
                                                             "or a figure does not match the journal")
    parser.add_argument("--figures", default=FIGURES, help=argparse.SUPPRESS)
    parser.add_argument("--document", default=DOCUMENT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    figures = load(args.figures)
    with open(args.document, encoding="utf-8") as f:
        document = f.read()
    try:
        before, current, after = split(document)
    except ValueError as err:
        print(f"figures_table: {err}", file=sys.stderr)
        return 1
    wrong = problems(figures, after)
    for sentence in wrong:
        print(f"figures_table: {sentence}", file=sys.stderr)
    if wrong:
        return 1
    made = table(figures)
    if args.check:
        if current != made:
            print("figures_table: the table in docs/BENCHMARKS.md is not the one benchmarks/figures.json makes; "
                  "run: python benchmarks/figures_table.py", file=sys.stderr)
            return 1
        return 0
    if current != made:
        with open(args.document, "w", encoding="utf-8") as f:
            f.write(before + made + after)
        print(f"figures_table: wrote {len(figures)} figures into {os.path.relpath(args.document, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
