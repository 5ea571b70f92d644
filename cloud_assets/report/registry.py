"""The registry of report pages: what is generated, the navigation and the overview's links. Adding a
page is a template in `templates/`, a builder in `pages` and an entry here."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cloud_assets.report import pages
from cloud_assets.report.gather import ReportData


@dataclasses.dataclass(frozen=True)
class Section:
    """One entry of the site's navigation: its pages' (title, file) for the dataset's classes, and
    how to build them (`None`: hand-written, from the site sources)."""
    title: str
    files: Callable[[list[str]], list[tuple[str, str]]]
    build: Callable[[ReportData, list[str], Path, np.random.Generator], list[pages.Page]] | None = None


SECTIONS = (
    Section("Overview", lambda classes: [("Overview", "index.md")],
            lambda data, files, img, rng: [pages.overview(data, files[0], pages_of(data.class_names)[1:])]),
    Section("Classes", lambda classes: [(c, f"classes/{c}.md") for c in classes],
            lambda data, files, img, rng: [pages.class_page(data, c, img, rng, f) for c, f in enumerate(files)]),
    Section("Dark images", lambda classes: [("Dark images", "dark.md")],
            lambda data, files, img, rng: [pages.dark_page(data, img, files[0])]),
    Section("Label issues", lambda classes: [("Label issues", "issues.md")],
            lambda data, files, img, rng: [pages.label_issues_page(data, img, files[0])]),
    Section("Methods", lambda classes: [("Methods", "methods.md")]),
)


def pages_of(classes) -> list[tuple[str, str]]:
    """(title, file) of every page, in navigation order."""
    return [entry for section in SECTIONS for entry in section.files(list(classes))]


def navigation(classes) -> list[dict]:
    """MkDocs `nav`: a section of one page is a link, a section of several a group."""
    nav = []
    for section in SECTIONS:
        files = section.files(list(classes))
        nav.append({section.title: files[0][1]} if len(files) == 1 and files[0][0] == section.title
                   else {section.title: [{title: f} for title, f in files]})
    return nav


def generate(data: ReportData, img_dir: Path, rng: np.random.Generator, log=print) -> list[pages.Page]:
    """Every generated page of the registry."""
    out = []
    for section in SECTIONS:
        if section.build is not None:
            log(f"report_site: {section.title}")
            out += section.build(data, [f for _, f in section.files(data.class_names)], img_dir, rng)
    return out
