"""Mask decoding: the notebook's `make_mask` against `rle.decode_resized`, side by side, same masks.

Writes (once, cached in bench/.cache/) a full-size train.csv of 5546 images with the synthetic
generator's labels, takes the notebook's validation split, and decodes every class mask of a sample
of validation images both ways at 1400x2100 -> 224x224. Last line:
`bench masks: ratio=R ratio_1thread=R1 exact=true|false` (ratio: ours on every core).
"""
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cloud_assets.lib.data import labels
from cloud_assets.lib.data import rle  # noqa: E402
from cloud_assets.synth import SynthConfig  # noqa: E402
from cloud_assets.synth.dataset import label_rows, plan, write_csv  # noqa: E402
from cloud_assets.eval import notebook  # noqa: E402

CLASSES = list(labels.NOTEBOOK_CLASS_ORDER)
SAMPLE = 250  # validation images decoded by both methods (x4 classes)


def main():
    cache = Path(__file__).parent / ".cache" / "masks-train.csv"
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        write_csv(cache, ("Image_Label", "EncodedPixels"), label_rows(plan(SynthConfig(test=0)), (1400, 2100)))
        print(f"wrote {cache} in {time.perf_counter() - t:.0f}s")
    train_df_orig = pd.read_csv(cache)
    table = labels.label_table(labels.read_train_csv(cache), CLASSES)
    _, val = labels.stratified_split(table)
    val = val[:SAMPLE]
    print(f"{len(train_df_orig)} rows in train.csv; decoding {len(val)} val images x {len(CLASSES)} classes")

    t = time.perf_counter()
    ref = np.empty((len(CLASSES), len(val), 224, 224))  # the notebook's float64 array
    for c, cls in enumerate(CLASSES):
        for i, img in enumerate(val):
            ref[c, i] = notebook.make_mask(train_df_orig, f"{img}_{cls}")
    t_notebook = time.perf_counter() - t

    cores = os.cpu_count() or 1
    times = {}
    for workers in (1, cores):
        t = time.perf_counter()
        encoded = train_df_orig.set_index("Image_Label")["EncodedPixels"]
        ours = np.stack([rle.decode_resized(encoded.reindex([f"{img}_{cls}" for img in val]).tolist(),
                                            workers=workers) for cls in CLASSES])
        times[workers] = time.perf_counter() - t

    exact = bool(np.array_equal(ours, ref))
    n = len(CLASSES) * len(val)
    print(f"notebook make_mask:                {t_notebook:7.2f}s  {1000 * t_notebook / n:6.2f} ms/mask")
    for workers, t in times.items():
        print(f"rle.decode_resized ({workers} thread{'s' if workers > 1 else ''}): {t:7.2f}s  "
              f"{1000 * t / n:6.2f} ms/mask  ratio {t_notebook / t:.1f}")
    print(f"bench masks: ratio={t_notebook / times[cores]:.1f} ratio_1thread={t_notebook / times[1]:.1f} "
          f"exact={'true' if exact else 'false'}")


if __name__ == "__main__":
    main()
