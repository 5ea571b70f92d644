"""The reference notebook's cells, reimplemented as written (its bugs fixed only where tests say so).

These are the references the tests and the benchmarks compare against; the package's production
path never uses them.
"""
import cv2
import numpy as np
import pandas as pd


def rle_decode(mask_rle: str = "", shape=(1400, 2100)):
    s = mask_rle.split()
    starts, lengths = [np.asarray(x, dtype=int) for x in (s[0:][::2], s[1:][::2])]
    starts -= 1
    ends = starts + lengths
    img = np.zeros(shape[0] * shape[1], dtype=np.uint8)
    for lo, hi in zip(starts, ends):
        img[lo:hi] = 1
    return img.reshape(shape, order="F")


def make_mask(df, image_label, shape=(1400, 2100), image_height=224, image_width=224):
    df = df.set_index("Image_Label")
    encoded_mask = df.loc[image_label, "EncodedPixels"]
    mask = np.zeros((shape[0], shape[1]), dtype=np.float32)
    if encoded_mask is not np.nan:
        mask = rle_decode(encoded_mask, shape)
    return cv2.resize(mask, (image_height, image_width))


def notebook_label_table(train_df_orig: pd.DataFrame):
    """The notebook's train_df (one row per image with >= 1 mask) and its class order."""
    train_df = train_df_orig[~train_df_orig["EncodedPixels"].isnull()].copy()
    train_df["Image"] = train_df["Image_Label"].map(lambda x: x.split("_")[0])
    train_df["Class"] = train_df["Image_Label"].map(lambda x: x.split("_")[1])
    classes = train_df["Class"].unique()
    train_df = train_df.groupby("Image")["Class"].agg(set).reset_index()
    for class_name in classes:
        train_df[class_name] = train_df["Class"].map(lambda x: 1 if class_name in x else 0)
    return train_df, list(classes)


def notebook_split(train_df):
    from sklearn.model_selection import train_test_split
    # `.values`, as the notebook wrote it, is an object array in the pandas of its time
    return train_test_split(np.asarray(train_df["Image"], dtype=object), test_size=0.2,
                            stratify=train_df["Class"].map(lambda x: str(sorted(list(x)))), random_state=10)


def get_img(path, size=224):
    return cv2.resize(cv2.imread(str(path)), (size, size)).astype(np.float32) / 255.0


def is_dark(img):
    return np.sum(img[:, :, 0] == 0) >= img.shape[0] * img.shape[1] / 3


def get_probability_for_precision_threshold(precision, thresholds, precision_threshold):
    probability_threshold = [thres for prec, thres in zip(precision, thresholds) if prec >= precision_threshold][0]
    return probability_threshold


def get_probability_for_recall_threshold(recall, thresholds, recall_threshold):
    i = len(thresholds) - 1
    probability_threshold_recall = None
    while probability_threshold_recall is None:
        next_threshold = thresholds[i]
        next_recall = recall[i]
        if next_recall >= recall_threshold:
            probability_threshold_recall = next_threshold
        i -= 1
    return probability_threshold_recall


def _binary_clf_curve(y_true, y_score):
    """scikit-learn 0.21's `_binary_clf_curve` (no weights, positive label 1)."""
    y_true = np.asarray(y_true) == 1
    y_score = np.asarray(y_score)
    desc_score_indices = np.argsort(y_score, kind="mergesort")[::-1]
    y_score = y_score[desc_score_indices]
    y_true = y_true[desc_score_indices]
    distinct_value_indices = np.where(np.diff(y_score))[0]
    threshold_idxs = np.r_[distinct_value_indices, y_true.size - 1]
    tps = np.cumsum(y_true * 1., dtype=np.float64)[threshold_idxs]
    fps = 1 + threshold_idxs - tps
    return fps, tps, y_score[threshold_idxs]


def precision_recall_curve(y_true, probas_pred):
    """scikit-learn 0.21's `precision_recall_curve`, the notebook's, verbatim: it stops when full
    recall is attained."""
    fps, tps, thresholds = _binary_clf_curve(y_true, probas_pred)
    precision = tps / (tps + fps)
    precision[np.isnan(precision)] = 0
    recall = tps / tps[-1]
    # stop when full recall attained and reverse the outputs so recall is decreasing
    last_ind = tps.searchsorted(tps[-1])
    sl = slice(last_ind, None, -1)
    return np.r_[precision[sl], 1], np.r_[recall[sl], 0], thresholds[sl]


def threshold_cell(y_true, y_pred, n_classes):
    """The notebook's threshold cell with its stale-curve bug fixed (the curve is computed per class), on
    the notebook's scikit-learn curve. A level the notebook cannot reach (IndexError) is recorded as None."""
    prec_maps = [dict() for _ in range(n_classes)]
    rec_maps = [dict() for _ in range(n_classes)]
    for class_i in range(n_classes):
        precision, recall, thresholds = precision_recall_curve(y_true[:, class_i], y_pred[:, class_i])
        for thres in np.arange(10, 100):
            try:
                prec_maps[class_i][thres] = get_probability_for_precision_threshold(precision, thresholds, thres / 100)
            except IndexError:
                prec_maps[class_i][thres] = None
            rec_maps[class_i][thres] = get_probability_for_recall_threshold(recall, thresholds, thres / 100)
    return prec_maps, rec_maps


def get_fp_tp_fn_indices(y_true, y_pred, class_i, threshold_probability):
    y_pred_prec = y_pred.copy()
    y_pred_prec[:, class_i] = np.where(y_pred_prec[:, class_i] >= threshold_probability, 1.0, 0.0)
    fp_idx = [idx for idx, (label, pred) in enumerate(zip(y_true[:, class_i], y_pred_prec[:, class_i])) if label == 0 and pred == 1]
    tp_idx = [idx for idx, (label, pred) in enumerate(zip(y_true[:, class_i], y_pred_prec[:, class_i])) if label == 1 and pred == 1]
    fn_idx = [idx for idx, (label, pred) in enumerate(zip(y_true[:, class_i], y_pred_prec[:, class_i])) if label == 1 and pred == 0]
    return tp_idx, fp_idx, fn_idx


def barplot_counts(y_true, imgs_indices):
    labels_np = np.array([y_true[i] for i in imgs_indices])
    return labels_np.sum(axis=0)
