"""Threshold maps, confusion matrices and TP/FP/FN against the notebook's cells on random data."""
import numpy as np
import pytest
from sklearn.metrics import multilabel_confusion_matrix

from cloud_assets.lib.classifier import mistakes, thresholds
from cloud_assets.eval import notebook


def _data(n, rng, classes=4):
    y_true = (rng.random((n, classes)) < 0.45).astype(np.int8)
    # informative but imperfect scores, with ties
    y_pred = np.clip(0.35 * y_true + rng.random((n, classes)) * 0.7, 0, 1).round(3).astype(np.float32)
    return y_true, y_pred


@pytest.mark.parametrize("n,seed_", [(300, 0), (57, 1), (12, 2)])
def test_threshold_maps_equal_the_notebook_cell_per_class(n, seed_):
    y_true, y_pred = _data(n, np.random.default_rng(seed_))
    maps = thresholds.threshold_maps(y_true, y_pred)
    assert list(maps.columns) == ["class", "kind", "level", "probability"]
    prec_ref, rec_ref = notebook.threshold_cell(y_true, y_pred, 4)
    for c in range(4):
        for level in range(10, 100):
            p = thresholds.probability_at(maps, c, level, "precision")
            r = thresholds.probability_at(maps, c, level, "recall")
            if prec_ref[c][level] is None:
                assert np.isnan(p)
            else:
                assert p == pytest.approx(prec_ref[c][level], abs=0)
            assert r == pytest.approx(rec_ref[c][level], abs=0)
    # the notebook's bug: one curve for every class would give the same thresholds to all
    assert maps[maps.kind == "precision"].groupby("class")["probability"].apply(tuple).nunique() > 1


def test_the_curve_is_the_notebooks_scikit_learn_curve_and_low_levels_keep_its_thresholds():
    from sklearn.metrics import precision_recall_curve

    y_true, y_pred = _data(300, np.random.default_rng(3))
    for c in range(4):
        ours, old = thresholds.pr_curve(y_true[:, c], y_pred[:, c]), notebook.precision_recall_curve(y_true[:, c], y_pred[:, c])
        for a, b in zip(ours, old):
            assert np.array_equal(a, b)
    # today's scikit-learn goes on below full recall: a precision level under the precision at full
    # recall maps to a lower threshold there than in the notebook
    precision, recall, thr = precision_recall_curve(y_true[:, 0], y_pred[:, 0])
    at_full = precision[np.flatnonzero(recall[:len(thr)] >= 1)[-1]]
    level = int(np.floor(at_full * 100)) - 1
    newer = notebook.get_probability_for_precision_threshold(precision, thr, level / 100)
    maps = thresholds.threshold_maps(y_true, y_pred)
    assert thresholds.probability_at(maps, 0, level) > newer
    assert thresholds.probability_at(maps, 0, level) == thresholds.pr_curve(y_true[:, 0], y_pred[:, 0])[2][0]


def test_unreached_precision_is_nan_not_index_error():
    y_true = np.array([[1], [0], [0], [1]])
    y_pred = np.array([[0.1], [0.9], [0.8], [0.2]], np.float32)  # the best score is a negative
    maps = thresholds.threshold_maps(y_true, y_pred)
    assert np.isnan(thresholds.probability_at(maps, 0, 99))
    with pytest.raises(IndexError):
        precision, recall, thr = thresholds.pr_curve(y_true[:, 0], y_pred[:, 0])
        notebook.get_probability_for_precision_threshold(precision, thr, 0.99)


@pytest.mark.parametrize("level", [80, 90, 95])
def test_confusion_and_outcomes_equal_the_notebook(level):
    y_true, y_pred = _data(200, np.random.default_rng(3))
    maps = thresholds.threshold_maps(y_true, y_pred)
    cut = np.array([thresholds.probability_at(maps, c, level) for c in range(4)])
    y_bin = mistakes.binarize(y_pred, cut)
    # the notebook's y_pred_prec_90 and multilabel_confusion_matrix
    ref_bin = y_pred.copy()
    for c in range(4):
        ref_bin[:, c] = np.where(ref_bin[:, c] >= cut[c], 1.0, 0.0)
    assert np.array_equal(mistakes.confusion(y_true, y_bin), multilabel_confusion_matrix(y_true, ref_bin))
    ref = multilabel_confusion_matrix(y_true, ref_bin)
    norm = np.divide(ref, ref.sum(axis=2, keepdims=True))
    assert np.allclose(mistakes.normalize_rows(ref), norm)
    table = mistakes.mistakes_table(y_true, y_pred, cut, list("ABCD"), [f"i{k}" for k in range(len(y_true))])
    for c, name in enumerate("ABCD"):
        tp, fp, fn = notebook.get_fp_tp_fn_indices(y_true, y_pred, c, cut[c])
        for outcome, ref_idx in (("tp", tp), ("fp", fp), ("fn", fn)):
            ours = table.loc[(table["class"] == name) & (table["outcome"] == outcome), "index"].tolist()
            assert ours == ref_idx
        dist = mistakes.distribution_table(y_true, table, "fp", list("ABCD"))
        got = dist[(dist["class"] == name) & (dist["true_class"] != "(no label)")]["images"].tolist()
        assert got == list(notebook.barplot_counts(y_true, fp)) if fp else got == [0, 0, 0, 0]


def test_edge_cases_one_image_and_all_one_class():
    one_true, one_pred = np.array([[1, 0, 1, 0]]), np.array([[0.7, 0.2, 0.4, 0.9]], np.float32)
    maps = thresholds.threshold_maps(one_true, one_pred)
    assert thresholds.probability_at(maps, 0, 90) == pytest.approx(0.7)
    assert np.isnan(thresholds.probability_at(maps, 1, 90))  # no positive: precision never reached
    cut = np.array([thresholds.probability_at(maps, c, 90) for c in range(4)])
    m = mistakes.confusion(one_true, mistakes.binarize(one_pred, cut))
    assert m.sum() == 4 and m[0, 1, 1] == 1 and m[3].tolist() == [[1, 0], [0, 0]]

    all_true = np.ones((20, 1), np.int8)
    scores = np.linspace(0.1, 0.9, 20, dtype=np.float32)[:, None]
    maps = thresholds.threshold_maps(all_true, scores)
    assert thresholds.probability_at(maps, 0, 99) == pytest.approx(0.1)      # precision 1 everywhere
    assert thresholds.probability_at(maps, 0, 50, "recall") == pytest.approx(scores[10, 0])
    all_false = np.zeros((20, 1), np.int8)
    maps = thresholds.threshold_maps(all_false, scores)
    assert maps["probability"].isna().all()
    assert np.isnan(thresholds.pr_auc(all_false, scores)[0])
