"""Build the report site: generated pages + the hand-written ones in `site/`, `mkdocs build --strict`,
then publish atomically (the previous site stays until a complete new one replaces it)."""
from __future__ import annotations

import importlib.resources
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from cloud_assets.constants import SAMPLE_SEED
from cloud_assets.lib.store import Bundle, Store
from cloud_assets.report import registry
from cloud_assets.report.gather import ReportData



VL_VERSION = "6.4"


def vega_bundle(cache_dir: Path) -> str:
    """Vega, Vega-Lite 6 and Vega-Embed in one classic script (from vl-convert: no network),
    kept in `cache_dir` per vl-convert version (bundling takes seconds)."""
    from importlib.metadata import version

    path = Path(cache_dir) / f"vega-bundle-{version('vl-convert-python')}-vl{VL_VERSION}.js"
    if not path.exists():
        import vl_convert

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(vl_convert.javascript_bundle("window.vegaEmbed = vegaEmbed;", vl_version=VL_VERSION))
        os.replace(tmp, path)
    return path.read_text()


def sources(folder: str | Path = "") -> Path:
    """The report's editable sources: a folder with `mkdocs.yml` and `site/` (the hand-written pages).
    `folder` when given, else the copy the package carries (in a checkout, links to the repository's
    own `mkdocs.yml` and `site/`; in a wheel, copies of them)."""
    root = Path(folder) if folder else Path(str(importlib.resources.files("cloud_assets.report") / "sources"))
    for part in ("mkdocs.yml", "site"):
        if not (root / part).exists():
            raise FileNotFoundError(f"{root}: has no {part}; the report's sources are a folder with mkdocs.yml "
                                    f"and site/ (the pages written by hand)")
    return root


def build(data: ReportData, source_dir: Path, var_dir: Path, log=print) -> Bundle:
    """Write every page, build with mkdocs (strict) beside the live site, and swap it in."""
    store = Store(var_dir)
    with store.staging("site-src") as work, store.staging("site") as built:
        docs = work.path / "docs"
        shutil.copytree(source_dir / "site", docs)
        (docs / "assets").mkdir(exist_ok=True)
        (docs / "assets" / "vega-bundle.js").write_text(vega_bundle(var_dir / ".cache"))
        for asset in ("report.css", "report.js"):
            shutil.copy(Path(__file__).with_name(asset), docs / "assets" / asset)
        for page in registry.generate(data, docs / "img", np.random.default_rng(SAMPLE_SEED), log):
            (docs / page.name).parent.mkdir(parents=True, exist_ok=True)
            (docs / page.name).write_text(page.text)
        config = yaml.safe_load((source_dir / "mkdocs.yml").read_text())
        config.update({
            "docs_dir": str(docs), "site_dir": str(built.path), "use_directory_urls": False,
            "extra_javascript": ["assets/vega-bundle.js", "assets/report.js"], "extra_css": ["assets/report.css"],
            "nav": registry.navigation(data.class_names),
        })
        config["theme"]["font"] = False  # no Google Fonts: the site works offline
        (work.path / "mkdocs.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        # SOURCE_DATE_EPOCH=0: reproducible, no build date in the output
        done = subprocess.run(["env", "SOURCE_DATE_EPOCH=0", sys.executable, "-m", "mkdocs", "build", "--strict",
                               "-f", str(work.path / "mkdocs.yml")], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"mkdocs build --strict failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    published = store.publish("site", built)
    store.discard(work)
    return published
