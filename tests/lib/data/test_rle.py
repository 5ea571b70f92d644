import numpy as np
import pandas as pd
import pytest

from cloud_assets.lib.data import rle
from cloud_assets.eval import notebook


def _random_masks(rng, n, shape):
    masks = []
    for i in range(n):
        m = np.zeros(shape, np.uint8)
        for _ in range(rng.integers(1, 4)):
            y0, x0 = rng.integers(0, shape[0] - 2), rng.integers(0, shape[1] - 2)
            m[y0:y0 + rng.integers(1, shape[0]), x0:x0 + rng.integers(1, shape[1])] = 1
        if i % 5 == 0:  # ragged, many runs
            m = (rng.random(shape) < 0.3).astype(np.uint8)
        masks.append(m)
    return masks


@pytest.mark.e2e
@pytest.mark.parametrize("shape", [(1400, 2100), (350, 525), (60, 90)])
def test_decode_matches_the_notebook_and_encode_inverts(shape):
    rng = np.random.default_rng(0)
    for m in _random_masks(rng, 6, shape):
        s = rle.encode(m)
        assert np.array_equal(notebook.rle_decode(s, shape), m)
        assert np.array_equal(rle.decode(s, shape), m)
    assert not rle.decode("", shape).any() and not rle.decode(float("nan"), shape).any()


@pytest.mark.parametrize("shape,size", [((1400, 2100), (224, 224)), ((350, 525), (224, 224)),
                                        ((1400, 2100), (128, 160)), ((100, 150), (224, 224))])
@pytest.mark.e2e
def test_decode_resized_is_bit_identical_to_the_notebooks_make_mask(shape, size):
    rng = np.random.default_rng(1)
    masks = _random_masks(rng, 10, shape)
    labels = [f"img{i}.jpg_Fish" for i in range(len(masks))] + ["empty.jpg_Fish"]
    df = pd.DataFrame({"Image_Label": labels, "EncodedPixels": [rle.encode(m) for m in masks] + [np.nan]})
    ours = rle.decode_resized(list(df["EncodedPixels"]) + [None], shape, size)
    assert ours.dtype == np.uint8 and ours.shape == (len(df) + 1, *size)
    for k, label in enumerate(labels):
        ref = notebook.make_mask(df, label, shape, image_height=size[1], image_width=size[0])
        assert np.array_equal(ours[k], ref), label
    assert not ours[-1].any()


@pytest.mark.parametrize("text,message", [
    ("1 2 3", "odd number of fields"),
    ("1 x", "not a non-negative integer"),
    ("0 5", "1-based"),
    ("1 0", "lengths positive"),
    ("10 100", "beyond the 10x10 image"),
    ("50 2 10 2", "must be sorted"),
    ("10 5 12 2", "inside run 1"),
])
def test_parse_rejects_bad_rle_with_a_reason(text, message):
    with pytest.raises(rle.RLEError, match=message):
        rle.parse(text, (10, 10))
