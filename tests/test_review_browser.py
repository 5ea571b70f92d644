"""The review round trip in a real browser (Debian's chromium, Playwright): decisions clicked and
typed on the built Label issues page, downloaded as label_review.csv, placed in the dataset folder,
applied by corrected_labels; the corrected CSV is checked against what was clicked, and the rebuilt
report shows the progress while the browser keeps the decisions."""
import os
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from cloud_assets.constants import ISSUES_SHOWN
from cloud_assets.defs.report import assets as report_assets
from cloud_assets.defs.review import assets as review_assets
from cloud_assets.lib import rle
from cloud_assets.lib.store import Store
from tests.helpers import ANALYSIS, CHROMIUM, DATA_ASSETS, FLAGS, failure_message, materialize, tiny_keras

pytestmark = pytest.mark.e2e  # the end-to-end tier (make test-fast leaves it out)

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
ALL = DATA_ASSETS + ANALYSIS + [report_assets.report_site, review_assets.label_review]


def test_review_round_trip_through_the_browser(dataset_copy, tmp_path):
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    model = tiny_keras(tmp_path / "model.keras")
    var = tmp_path / "var"
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(dataset_copy, var, ALL, model, instance=instance)
    assert result.success, failure_message(result)
    issues = Store(var / "store").get("label_issues").table("issues")
    shape = tuple(Store(var / "store").get("label_table").json("meta")["original_shape"])
    page_url = (var / "site" / "issues.html").as_uri()  # the published link: a rebuild replaces its target
    ARTIFACTS.mkdir(exist_ok=True)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 1200})
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_url)
        figures = page.locator(".issues figure")
        n = figures.count()
        assert n == min(ISSUES_SHOWN, len(issues))
        # every label of train.csv audited, both splits listed, and a filter by split
        audited = f"{len(issues)} labels of {issues['image'].nunique()} images audited"
        assert audited in page.locator("article").text_content()
        assert set(issues["split"]) == {"train", "val"}
        page.select_option("#f-split", "train")
        shown = [figures.nth(k) for k in range(n) if figures.nth(k).is_visible()]
        assert shown and all(f.get_attribute("data-split") == "train" for f in shown)
        assert len(shown) == int((issues.head(n)["split"] == "train").sum())
        page.select_option("#f-split", "")
        assert page.locator("img[loading=lazy]").count() == n  # long lists load as they scroll

        def candidate(k):
            f = figures.nth(k)
            return f, f.get_attribute("data-image"), f.get_attribute("data-class"), f.get_attribute("data-kind")

        clicked = {}
        # a removal or a move, chosen by kind so that the expected change is known
        kinds = [figures.nth(k).get_attribute("data-kind") for k in range(n)]
        spurious = kinds.index("spurious label") if "spurious label" in kinds else None
        if spurious is not None:
            f, image, cls, kind = candidate(spurious)
            f.locator("select.new-class").select_option("")  # (remove)
            f.locator("button.accept").click()
            clicked[(image, cls)] = ("accept", kind, "")
        # rejections by key: the page focuses the next open candidate after each decision
        for _ in range(2):
            current = page.locator(".issues figure.current")
            image, cls, kind = (current.get_attribute(a) for a in ("data-image", "data-class", "data-kind"))
            page.keyboard.press("r")
            clicked[(image, cls)] = ("reject", kind, "")
        # a class change: the mask of the proposed class moves to the candidate's class
        if "class confusion" in kinds:
            f, image, cls, kind = candidate(kinds.index("class confusion"))
            new = f.locator("select.new-class").input_value()
            f.locator("button.accept").click()
            clicked[(image, cls)] = ("accept", kind, new)
        count = page.locator("#review-count").text_content()
        assert count.startswith(f"{len(clicked)} of {n} reviewed"), count
        with page.expect_download() as download:
            page.click("#review-download")
        assert download.value.suggested_filename == "label_review.csv"
        download.value.save_as(dataset_copy / "label_review.csv")
        page.screenshot(path=str(ARTIFACTS / "review-issues.png"))

        review = pd.read_csv(dataset_copy / "label_review.csv", dtype=str, keep_default_na=False)
        assert list(review.columns) == ["image", "class", "decision", "new_class", "score", "kind", "reviewed_at"]
        assert {(r.image, r[2]): (r.decision, r.kind, r.new_class) for r in review.itertuples()} == clicked

        # placed in the dataset folder: observed, applied, and the report rebuilt
        result = materialize(dataset_copy, var, ALL + [review_assets.corrected_labels], model, instance=instance,
                             selection=[review_assets.label_review, review_assets.corrected_labels,
                                        report_assets.report_site])
        assert result.success, failure_message(result)
        train = pd.read_csv(dataset_copy / "train.csv", dtype=str, keep_default_na=False).set_index("Image_Label")
        corrected = pd.read_csv(var / "store" / "corrected_labels" / "train_corrected.csv", dtype=str,
                                keep_default_na=False).set_index("Image_Label")
        assert list(corrected.index) == list(train.index)
        changed = set()
        for (image, cls), (decision, kind, new) in clicked.items():
            if decision == "accept" and kind == "spurious label":
                assert corrected.loc[f"{image}_{cls}", "EncodedPixels"] == ""
                changed.add(f"{image}_{cls}")
            elif decision == "accept" and kind == "class confusion":
                source, target = f"{image}_{new}", f"{image}_{cls}"
                moved = rle.decode(train.loc[source, "EncodedPixels"], shape)
                assert corrected.loc[source, "EncodedPixels"] == ""
                assert (rle.decode(corrected.loc[target, "EncodedPixels"], shape) >= moved).all()
                changed |= {source, target}
        unchanged = [k for k in train.index if k not in changed]
        assert corrected.loc[unchanged].equals(train.loc[unchanged])

        # the rebuilt page still has the decisions (local storage), and shows the progress
        page.goto(page_url)
        assert page.locator("#review-count").text_content().startswith(f"{len(clicked)} of {n} reviewed")
        assert page.locator(".issues figure.rejected").count() == sum(d == "reject" for d, _, _ in clicked.values())
        assert f"{len(clicked)} decisions" in page.locator("article").text_content()
        page.screenshot(path=str(ARTIFACTS / "review-progress.png"), full_page=False)
        browser.close()
    assert not errors, errors
