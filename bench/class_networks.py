"""The audit's candidate class networks, side by side on one dataset: each trained on the current
(noisy) labels of every fold but the held-out one, then judged on the held-out fold's images, which
it never saw: how well its class probabilities rank the clean labels (AUROC), how well they find the
labels whose presence the noise changed (a missing or spurious label, one half of a swap: AUROC and
precision at k of |label - p|), and its training rate. Pure Keras 3 and the project's `lib`, no
Dagster: it runs on TensorFlow here and on JAX where a GPU is (`KERAS_BACKEND=jax`).

Networks:
  unet-fast, unet-strong   the audit's profiles (`lib.audit.network`), trained as the audit trains them
  unet-256x384             the U-Net at twice the strong profile's resolution
  densenet                 the audit's class network (`lib.audit.network.densenet`, the demo classifier's
                           architecture), trained as the audit trains it (`train_classes`: flips, cosine-
                           decayed Adam, the epoch with the best held-out loss kept) for --epochs
  densenet121              Keras' DenseNet121, `weights=None` (the reference notebook's architecture), trained so
  clone                    the classifier's own architecture with new weights (`keras.models.clone_model` of
                           --model), trained so

    .venv/bin/python bench/class_networks.py --data DIR [--networks a,b] [--folds 0] [--epochs 20] [--out FILE]

DIR is a dataset in Kaggle layout with `train_clean.csv` beside `train.csv` (`cloud-assets synth` then
`cloud-assets renoise`). Last line per network and fold: `bench class_networks: network=N size=HxW fold=F
auroc_clean=A error_auroc=E error_precision_at_k=P errors=K images_per_s=R train_s=T`.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cloud_assets.lib.audit import folds as audit_folds, network  # noqa: E402
from cloud_assets.lib.data import images as image_lib, labels, rle  # noqa: E402

UNETS = {"unet-fast": network.PROFILES["fast"], "unet-strong": network.PROFILES["strong"],
         "unet-256x384": network.Profile((256, 384), (8, 16, 32, 48, 64))}
CLASSIFIERS = ("densenet", "densenet121", "clone")


def load(data: Path, class_names):
    """Image names, noisy and clean 0/1 labels `(n, classes)`, the noisy RLE table and the original shape."""
    noisy = labels.read_train_csv(data / "train.csv")
    table = labels.label_table(noisy, class_names)
    clean = labels.label_table(labels.read_train_csv(data / "train_clean.csv"), class_names).set_index("image")
    names = list(table["image"])
    y = table[list(class_names)].to_numpy(np.uint8)
    y_clean = clean.loc[names, list(class_names)].to_numpy(np.uint8)
    encoded = noisy.set_index("Image_Label")["EncodedPixels"]
    shape = cv2.imread(str(data / "train_images" / names[0])).shape[:2]
    return names, y, y_clean, encoded, shape


def read_images(data: Path, names, size) -> np.ndarray:
    out = np.empty((len(names), *size, 3), np.uint8)
    image_lib.cache_images([data / "train_images" / n for n in names], out, tuple(size))
    return out


def build_classifier(name: str, size, n_classes: int, model_file: Path | None):
    import keras

    if name == "densenet121":
        return keras.applications.DenseNet121(weights=None, input_shape=(*size, 3), classes=n_classes,
                                              classifier_activation="sigmoid")
    if name == "clone":
        if model_file is None:
            raise SystemExit("--networks clone needs --model FILE (the classifier whose architecture is cloned)")
        return keras.models.clone_model(keras.models.load_model(model_file, compile=False))
    return network.densenet(tuple(size), n_classes)


def scores(p: np.ndarray, y: np.ndarray, y_clean: np.ndarray) -> dict:
    """AUROC of `p` against the clean labels; AUROC and precision at k of |y - p| for the labels whose
    presence differs from the clean one (k: their number)."""
    from sklearn.metrics import roc_auc_score

    wrong = (y != y_clean).ravel()
    suspicion = np.abs(y.astype(np.float32) - p).ravel()
    k = int(wrong.sum())
    top = np.argsort(-suspicion, kind="stable")[:k]
    return {"auroc_clean": float(roc_auc_score(y_clean.ravel(), p.ravel())),
            "error_auroc": float(roc_auc_score(wrong, suspicion)) if 0 < k < len(wrong) else float("nan"),
            "error_precision_at_k": float(wrong[top].mean()) if k else float("nan"), "errors": k}


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--networks", default="unet-fast,unet-strong,unet-256x384,densenet,densenet121")
    parser.add_argument("--folds", default="0", help="held-out folds, comma-separated (of 5)")
    parser.add_argument("--epochs", type=int, default=20, help="the class networks' epochs")
    parser.add_argument("--limit", type=int, default=0, help="the first N images only (a quick check)")
    parser.add_argument("--model", type=Path, help="the classifier's model file, for its architecture")
    parser.add_argument("--class-size", default="224x224", help="the class networks' input size")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    import keras

    class_names = labels.NOTEBOOK_CLASS_ORDER
    names, y, y_clean, encoded, shape = load(args.data, class_names)
    if args.limit:
        names, y, y_clean = names[:args.limit], y[:args.limit], y_clean[:args.limit]
    fold_of = audit_folds.assign(names, audit_folds.combination(y, class_names), 5)
    print(f"{args.data}: {len(names)} images, {int((y != y_clean).sum())} labels whose presence is wrong; "
          f"keras {keras.__version__} on {keras.backend.backend()}", flush=True)
    results, cached = [], {}

    def images_at(size):
        if size not in cached:
            cached[size] = read_images(args.data, names, size)
        return cached[size]

    for name in args.networks.split(","):
        for fold in map(int, args.folds.split(",")):
            train, held = fold_of != fold, fold_of == fold
            start = time.monotonic()
            if name in UNETS:
                profile = UNETS[name]
                x = images_at(profile.size)
                masks = np.stack([rle.decode_resized([encoded.get(f"{n}_{c}", "") for n in names], shape,
                                                     profile.size, workers=8) for c in class_names], axis=-1)
                config = network.TrainingConfig(size=profile.size, widths=profile.widths)
                model, history = network.train(x[train], masks[train], y[train], config,
                                               log=lambda line: print("  " + line, flush=True))
                rates = [h["images_per_s"] for h in history]
                p = np.concatenate([probs for _, probs, _ in network.predict(model, x[held])])
            elif name in CLASSIFIERS:
                size = tuple(int(v) for v in args.class_size.split("x"))
                x = images_at(size)
                net = build_classifier(name, size, len(class_names), args.model)
                config = network.ClassConfig(size=size, epochs=args.epochs)
                net, history = network.train_classes(x[train], y[train], config, model=net,
                                                     log=lambda line: print("  " + line, flush=True))
                rates = [h["images_per_s"] for h in history]
                p = network.predict_classes(net, x[held])
            else:
                raise SystemExit(f"--networks: {name!r} is none of {', '.join([*UNETS, *CLASSIFIERS])}")
            seconds = time.monotonic() - start
            row = {"network": name, "size": "x".join(map(str, x.shape[1:3])), "fold": fold,
                   **scores(p, y[held], y_clean[held]), "images_per_s": round(float(np.median(rates[1:] or rates)), 1),
                   "train_s": round(seconds, 1)}
            results.append(row)
            if args.out:
                args.out.write_text(json.dumps(results, indent=1))
            print("bench class_networks: " + " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                                      for k, v in row.items()), flush=True)
            keras.backend.clear_session()
    return results


if __name__ == "__main__":
    main()
