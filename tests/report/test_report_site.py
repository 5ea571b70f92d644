"""The report site: built by report_site from a tiny run, atomic, reproducible, and checked in a
real browser (Debian's chromium driven by Playwright) with the network cut off."""
import functools
import hashlib
import http.server
import os
import shutil
import socketserver
import threading
from pathlib import Path

import pytest

from cloud_assets.report import site
from tests.helpers import A, ANALYSIS, CHROMIUM, DATA_ASSETS, FLAGS, failure_message, materialize, tiny_keras

pytestmark = pytest.mark.e2e  # the end-to-end tier (make test-fast leaves it out)

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def built(small_dataset, tmp_path_factory):
    import dagster as dg

    tmp = tmp_path_factory.mktemp("report")
    model = tiny_keras(tmp / "model.keras")
    instance = dg.DagsterInstance.ephemeral()  # shared: the overview's history is read from it
    result = materialize(small_dataset, tmp / "var", ALL, model, instance=instance)
    assert result.success, failure_message(result)
    return tmp / "var", result, model, instance


ALL = DATA_ASSETS + ANALYSIS + [A.report_site]


def _rebuild(small_dataset, built, sources=""):
    var, _, model, instance = built
    return materialize(small_dataset, var, ALL, model, selection=[A.report_site], instance=instance,
                       run_config={"ops": {"report_site": {"config": {"sources": str(sources)}}}})


def _pages(site: Path) -> list[str]:
    return sorted(str(p.relative_to(site)) for p in site.rglob("*.html") if p.name != "404.html")


def test_site_has_every_page_and_is_published_atomically(built):
    var, result = built[:2]
    site = var / "site"
    assert site.is_symlink()
    pages = _pages(site)
    assert {"index.html", "dark.html", "methods.html"} <= set(pages)
    assert {f"classes/{c}.html" for c in ["Fish", "Flower", "Sugar", "Gravel"]} <= set(pages)
    meta = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == "report_site"][0]
    assert meta.materialization.metadata["index"].value.endswith("/index.html")
    assert not list((var / ".staging").iterdir())


def test_the_label_issues_page_says_why_each_candidate_and_how_many_labels_are_wrong(built):
    """The overview and the Label issues page give the labels suspected beside the estimate of how many
    are wrong, and say what cleanlab's health score is; each candidate has its sentence."""
    import html
    import re

    from cloud_assets.lib.store import Store

    var = built[0]
    issues = Store(var / "store").get("label_issues").table("issues")
    page = html.unescape((var / "site" / "issues.html").read_text())
    expected, suspected = int(round(issues["score"].sum())), int((issues["score"] >= 0.5).sum())
    text = re.sub("<[^>]+>", "", page)
    assert f"The audit suspects {suspected} of the {len(issues)} labels" in text and f"about {expected} (" in text
    overview = re.sub("<[^>]+>", "", html.unescape((var / "site" / "index.html").read_text()))
    assert f"The audit suspects {suspected} labels" in overview and f"about {expected} (" in overview
    assert "not an error rate" in overview
    captions = re.findall(r'<span class="why">(#\d+ [^<]*)</span>', page)
    assert captions and all(re.fullmatch(r"#\d+ \S+ \w+ \((train|val)\): .+\. Accept .+\.", c) for c in captions), captions[:3]
    first = issues.iloc[0]
    assert captions[0].startswith(f"#1 {first['image']} {first['class']} (")


def _digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_two_builds_of_the_same_data_are_identical_and_a_failed_build_keeps_the_site(built, small_dataset, tmp_path):
    var = built[0]
    before = _digest((var / "site").resolve())
    result = _rebuild(small_dataset, built)
    assert result.success, failure_message(result)
    assert _digest((var / "site").resolve()) == before

    # sources edited elsewhere (run config): a page with a broken link fails mkdocs --strict; the site stays
    shutil.copytree(site.sources(), tmp_path / "sources", symlinks=False)
    (tmp_path / "sources" / "site" / "methods.md").write_text("# Methods\n\n[broken](nowhere.md)\n")
    result = _rebuild(small_dataset, built, tmp_path / "sources")
    assert not result.success and "mkdocs build --strict failed" in failure_message(result)
    assert _digest((var / "site").resolve()) == before
    assert not list((var / ".staging").iterdir())


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served(built):
    site = (built[0] / "site").resolve()
    with socketserver.TCPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site))) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
        httpd.shutdown()


@pytest.mark.parametrize("origin", ["file", "http"])
def test_every_page_renders_offline_in_chromium(built, served, origin):
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    site = (built[0] / "site").resolve()
    base = site.as_uri() if origin == "file" else served
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        outside, errors = [], []

        def route(r):
            url = r.request.url
            if url.startswith(("file://", "data:", "blob:", served)):
                return r.continue_()
            outside.append(url)
            return r.abort()

        page.route("**/*", route)
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        for name in _pages(site):
            page.goto(f"{base}/{name}")
            page.wait_for_load_state("load")
            charts = page.locator("div.chart")
            n = charts.count()
            if n:
                page.wait_for_function(f"document.querySelectorAll('div.chart svg').length >= {n}", timeout=15000)
                marks = page.evaluate("""() => [...document.querySelectorAll('div.chart')].map(
                    d => d.querySelectorAll('svg .role-mark path, svg .role-mark line, svg .role-mark rect').length)""")
                assert all(m > 0 for m in marks), (name, marks)
            # the long lists' images load lazily, the review's overlays on first use: load them all to find a broken one
            page.evaluate("""() => document.querySelectorAll('img[loading=lazy]').forEach(i => {
                i.loading = 'eager';
                if (i.dataset.src) i.src = i.dataset.src;
            })""")
            page.wait_for_function("[...document.images].every(i => i.complete)", timeout=30000)
            broken = page.evaluate("""() => [...document.images].filter(
                i => !i.complete || i.naturalWidth === 0).map(i => i.src)""")
            assert not broken, (name, broken)
            if name in ("index.html", "classes/Gravel.html", "dark.html", "issues.html") and origin == "file":
                page.screenshot(path=str(ARTIFACTS / f"report-{name.replace('/', '-')}.png"), full_page=True)
        if origin == "file":
            assert page.goto(f"{base}/index.html") and page.locator("div.chart").count() >= 3
        browser.close()
    assert not outside, outside
    assert not errors, errors


def test_a_precision_level_outside_the_confusion_levels_is_computed_and_shown(built, small_dataset):
    import numpy as np

    from cloud_assets.lib.classifier import thresholds
    from cloud_assets.lib.store import Store

    var, _, model, instance = built
    result = materialize(small_dataset, var, ALL, model, instance=instance,
                         selection=["mistakes", "report_site"],
                         run_config={"ops": {"mistakes": {"config": {"precision_level": 85}}}})
    assert result.success, failure_message(result)
    store = Store(var / "store")
    assert 85 not in set(store.get("confusion_matrices").table("matrices")["level"])
    preds = store.get("val_predictions")
    cut = thresholds.probability_at(store.get("threshold_maps").table("maps"), 0, 85)
    tp = int(((preds.array("probabilities")[:, 0] >= cut) & (preds.array("y_true")[:, 0] == 1)).sum())
    page = (var / "site" / "classes" / "Fish.html").read_text()
    assert "At 85% precision (the configured level)" in page
    if not np.isnan(cut):
        assert f"At 85% precision (probability ≥ {cut:.3f}) the classifier finds {tp} of" in page
    index = (var / "site" / "index.html").read_text()
    assert "85% precision" in index and "Findings" in index and "What the false positives carry" in index
    # back to the fixture's level for the other tests
    result = materialize(small_dataset, var, ALL, model, instance=instance, selection=["mistakes", "report_site"])
    assert result.success, failure_message(result)


HOSTILE = "<script>x<img src=x onerror=window.pwned=1>"


def test_html_in_image_names_is_shown_as_text(small_dataset, tmp_path):
    """Every image renamed to start with an HTML tag that would run code if it were not escaped."""
    import shutil

    from playwright.sync_api import sync_playwright

    data = tmp_path / "data"
    shutil.copytree(small_dataset, data)
    for split in ("train_images", "test_images"):
        for p in (data / split).iterdir():
            p.rename(p.with_name(HOSTILE + p.name))
    csv = data / "train.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join(lines[:1] + [HOSTILE + line for line in lines[1:]]) + "\n")
    result = materialize(data, tmp_path / "var", ALL, tiny_keras(tmp_path / "model.keras"))
    assert result.success, failure_message(result)
    site = (tmp_path / "var" / "site").resolve()
    shown = 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        for name in _pages(site):
            page.goto(f"{site.as_uri()}/{name}")
            page.wait_for_load_state("load")
            assert page.evaluate("() => window.pwned === undefined"), name
            assert page.locator("img[src='x']").count() == 0, name
            shown += page.inner_text("body").count(HOSTILE)
        browser.close()
    assert shown > 0  # the names are on the pages, as text
