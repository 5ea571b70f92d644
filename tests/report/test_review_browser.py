"""The review round trip in a real browser (Debian's chromium, Playwright): the Label issues page's
cards checked as rendered (one per image, at its file's aspect, labels in their class colours), 20
candidates reviewed by keyboard alone (overlays, large view, accept, reject, next), the review
downloaded as label_review.csv, placed in the dataset folder and applied by corrected_labels; the
corrected CSV is checked against what was decided and against the page's own words, and the rebuilt
report shows the progress while the browser keeps the decisions (another browser starts from the
review applied). Screenshots in test-artifacts/."""
import os
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from cloud_assets.constants import ISSUES_SHOWN
from cloud_assets.lib.data import rle
from cloud_assets.lib.saliency.attention import boxes_mask, parse_boxes
from cloud_assets.lib.audit.kinds import CONFUSION, LOOSE, MISSING, SPURIOUS
from cloud_assets.report.images import hex_color, mask_colors
from cloud_assets.lib.store import Store
from tests.helpers import A, ANALYSIS, CHROMIUM, DATA_ASSETS, FLAGS, failure_message, materialize, tiny_keras

pytestmark = pytest.mark.e2e  # the end-to-end tier (make test-fast leaves it out)

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ALL = DATA_ASSETS + ANALYSIS + [A.report_site, A.label_review]


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

    classes = list(Store(var / "store").get("label_table").json("meta")["class_names"])
    colors = {c: hex_color(bgr) for c, (bgr, _) in zip(classes, mask_colors(len(classes)))}
    train = pd.read_csv(dataset_copy / "train.csv", dtype=str, keep_default_na=False).set_index("Image_Label")
    labelled = {c: {i.rpartition("_")[0] for i in train.index[(train["EncodedPixels"] != "") & train.index.str.endswith("_" + c)]}
                for c in classes}
    proposal = dict(zip(zip(issues["image"], issues["class"]), issues["proposal"]))

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 1200})
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_url)
        candidates, cards = page.locator(".issues li.candidate"), page.locator(".issues figure.card")
        n = candidates.count()
        top = issues.head(n)
        assert n == min(ISSUES_SHOWN, len(issues))
        # one card per image, ranked by its best candidate, holding that image's candidates in rank order
        order = list(dict.fromkeys(top["image"]))
        assert [cards.nth(j).get_attribute("data-image") for j in range(cards.count())] == order
        for j in range(min(cards.count(), 5)):
            card = cards.nth(j)
            within = card.locator("li.candidate")
            assert [within.nth(i).get_attribute("data-class") for i in range(within.count())] == \
                list(top.loc[top["image"] == order[j], "class"])
        # every label of train.csv audited, both splits listed, and a filter by split
        audited = f"{len(issues)} labels of {issues['image'].nunique()} images audited"
        assert audited in page.locator("article").text_content()
        assert set(issues["split"]) == {"train", "val"}
        page.select_option("#f-split", "train")
        shown = [candidates.nth(k) for k in range(n) if candidates.nth(k).is_visible()]
        assert shown and all(c.get_attribute("data-split") == "train" for c in shown)
        assert len(shown) == int((top["split"] == "train").sum())
        page.select_option("#f-split", "")

        # the plain image at its file's aspect, which is the dataset's; the labels outlined in their colours
        for j in range(3):
            card = cards.nth(j)
            card.scroll_into_view_if_needed()
            img = card.locator("img.plain")
            img.evaluate("i => i.decode()")
            natural_w, natural_h, shown_w, shown_h = img.evaluate(
                "i => [i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().width, i.getBoundingClientRect().height]")
            assert natural_w / natural_h == pytest.approx(shape[1] / shape[0], rel=0.01)
            assert shown_w / shown_h == pytest.approx(natural_w / natural_h, rel=0.01)
            image = card.get_attribute("data-image")
            strokes = card.locator("svg path.label").evaluate_all("ps => ps.map(p => p.getAttribute('stroke'))")
            assert sorted(strokes) == sorted(colors[c] for c in classes if image in labelled[c])

        def state():
            c = page.locator(".issues li.candidate.current")
            return c, c.get_attribute("data-image"), c.get_attribute("data-class"), c.get_attribute("data-kind")

        # 20 candidates reviewed by keyboard alone; the page focuses the next open candidate after each
        decided, words = {}, {}
        page.keyboard.press("h")  # the audit's heat map on every card
        heat = page.locator(".issues li.candidate.current").evaluate(
            "c => c.closest('figure').querySelector('img.heat.shown')")
        assert heat is not None
        page.locator(".issues img.heat.shown").first.evaluate("i => i.decode()")
        assert page.locator(".issues img.heat.shown").first.evaluate("i => i.naturalWidth") > 0
        page.screenshot(path=str(ARTIFACTS / "review-cards.png"))
        page.keyboard.press("h")
        assert page.locator(".issues img.heat.shown").count() == 0
        for step in range(20):
            current, image, cls, kind = state()
            if step == 3:  # next and previous move the focus without deciding
                page.keyboard.press("n")
                assert state()[1:3] != (image, cls)
                page.keyboard.press("p")
                assert state()[1:3] == (image, cls)
            if step == 5:  # the large view, with its overlays, and the keys working there
                page.keyboard.press("Enter")
                dialog = page.locator("#large-view")
                assert dialog.evaluate("d => d.open")
                large = dialog.locator("img.plain")
                large.evaluate("i => i.decode()")
                width = large.evaluate("i => i.getBoundingClientRect().width")
                assert width > 2 * current.evaluate("c => c.closest('figure').querySelector('img.plain').getBoundingClientRect().width")
                page.keyboard.press("g" if current.get_attribute("data-split") == "val" else "h")
                assert dialog.locator("img.overlay.shown").count() == 1
                page.screenshot(path=str(ARTIFACTS / "review-large.png"))
            fixable = kind not in (MISSING, LOOSE) or parse_boxes(proposal[(image, cls)])
            decision = "accept" if step % 2 == 0 and fixable else "reject"
            select = current.locator("select.new-class")
            new = select.input_value() if decision == "accept" and select.count() else ""
            if decision == "accept":
                words[(image, cls)] = current.locator("span.after:not([hidden])").text_content()
            page.keyboard.press("a" if decision == "accept" else "r")
            decided[(image, cls)] = (decision, kind, new)
            if step == 5:
                assert page.locator("#large-view").evaluate("d => d.open")  # the next candidate, still large
                assert page.locator("#large-view .large-text").text_content().startswith("#")
                page.keyboard.press("Escape")
                assert not page.locator("#large-view").evaluate("d => d.open")
                page.keyboard.press("g" if current.get_attribute("data-split") == "val" else "h")
        count = page.locator("#review-count").text_content()
        assert count.startswith(f"20 of {n} reviewed"), count
        page.focus("#review-download")  # Enter presses the button in focus, not the page's key for the large view
        with page.expect_download(timeout=10_000) as download:
            page.keyboard.press("Enter")
        assert not page.locator("#large-view").evaluate("d => d.open")
        assert download.value.suggested_filename == "label_review.csv"
        download.value.save_as(dataset_copy / "label_review.csv")

        review = pd.read_csv(dataset_copy / "label_review.csv", dtype=str, keep_default_na=False)
        assert list(review.columns) == ["image", "class", "decision", "new_class", "score", "kind", "reviewed_at",
                                        "labels_sha256"]
        assert {(r.image, r[2]): (r.decision, r.kind, r.new_class) for r in review.itertuples()} == decided
        shown = {(c.get_attribute("data-image"), c.get_attribute("data-class")): c.get_attribute("data-labels")
                 for c in candidates.all()}
        assert all(r.labels_sha256 == shown[r.image, r[2]] for r in review.itertuples())

        # placed in the dataset folder: observed, applied, and the report rebuilt
        result = materialize(dataset_copy, var, ALL + [A.corrected_labels], model, instance=instance,
                             selection=[A.label_review, A.corrected_labels,
                                        A.report_site])
        assert result.success, failure_message(result)
        corrected = pd.read_csv(var / "store" / "corrected_labels" / "train_corrected.csv", dtype=str,
                                keep_default_na=False).set_index("Image_Label")
        assert list(corrected.index) == list(train.index)
        accepted = {k: v for k, v in decided.items() if v[0] == "accept"}
        assert accepted
        touched = set()
        for (image, cls), (_, kind, new) in accepted.items():
            after = lambda c: rle.decode(corrected.loc[f"{image}_{c}", "EncodedPixels"], shape)  # noqa: E731
            before = lambda c: rle.decode(train.loc[f"{image}_{c}", "EncodedPixels"], shape)  # noqa: E731
            alone = sum(i == image for i, _ in accepted) == 1  # several on one image compose (test_review)
            if kind in (SPURIOUS, CONFUSION) and new:  # a move: the mask reaches its class, whatever else
                source, target = (cls, new) if kind == SPURIOUS else (new, cls)
                assert (after(target) >= before(source)).all()
            elif kind == SPURIOUS and alone:
                assert not after(cls).any()
            elif kind in (MISSING, LOOSE) and alone:
                assert (after(cls) == boxes_mask(parse_boxes(proposal[(image, cls)]), shape)).all()
            touched.add(image)
        for (image, cls), text in words.items():  # the page's words say what the corrected labels hold
            if sum(i == image for i, _ in accepted) == 1:
                now = [c for c in classes if corrected.loc[f"{image}_{c}", "EncodedPixels"] != ""]
                assert (f"→ {', '.join(now) or 'none'}." in text) or ("unchanged" in text and now == [
                    c for c in classes if image in labelled[c]]), (image, cls, text, now)
        unchanged = [k for k in train.index if k.rpartition("_")[0] not in touched]
        assert corrected.loc[unchanged].equals(train.loc[unchanged])

        # the rebuilt page still has the decisions (local storage), and shows the progress
        page.goto(page_url)
        assert page.locator("#review-count").text_content().startswith(f"20 of {n} reviewed")
        assert page.locator(".issues li.candidate.rejected").count() == sum(d == "reject" for d, _, _ in decided.values())
        assert "20 decisions" in page.locator("article").text_content()
        page.screenshot(path=str(ARTIFACTS / "review-progress.png"), full_page=False)
        other = browser.new_context()  # another browser, holding no decisions: it starts from the review applied
        elsewhere = other.new_page()
        elsewhere.goto(page_url)
        assert elsewhere.locator("#review-count").text_content().startswith(f"20 of {n} reviewed")
        assert elsewhere.locator(".issues li.candidate.rejected").count() == sum(
            d == "reject" for d, _, _ in decided.values())
        other.close()

        # a decision made when the image's labels were others (a site rebuilt on a new train.csv): shown
        # undecided and not downloaded, but kept in the browser
        stale = page.evaluate("""() => {
            const key = "cloud-assets-review:" + document.getElementById("review-bar").dataset.dataset;
            const d = JSON.parse(localStorage.getItem(key)), k = Object.keys(d)[0];
            d[k].labels_sha256 = "000000000000";
            localStorage.setItem(key, JSON.stringify(d));
            return k; }""")
        page.reload()
        assert page.locator("#review-count").text_content().startswith(f"19 of {n} reviewed")
        with page.expect_download() as download:
            page.click("#review-download")
        again = pd.read_csv(download.value.path(), dtype=str, keep_default_na=False)
        assert len(again) == 19 and stale not in set(again["image"] + "|" + again["class"])
        assert page.evaluate("() => Object.keys(JSON.parse(localStorage.getItem('cloud-assets-review:' + "
                             "document.getElementById('review-bar').dataset.dataset))).length") == 20
        browser.close()
    assert not errors, errors
