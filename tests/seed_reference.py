"""The seed notebook's cells, reimplemented as written (its bugs fixed only where tests say so).

These are the references the tests compare against; nothing here is used by the package.
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


def seed_label_table(train_df_orig: pd.DataFrame):
    """The seed's train_df (one row per image with >= 1 mask) and its class order."""
    train_df = train_df_orig[~train_df_orig["EncodedPixels"].isnull()].copy()
    train_df["Image"] = train_df["Image_Label"].map(lambda x: x.split("_")[0])
    train_df["Class"] = train_df["Image_Label"].map(lambda x: x.split("_")[1])
    classes = train_df["Class"].unique()
    train_df = train_df.groupby("Image")["Class"].agg(set).reset_index()
    for class_name in classes:
        train_df[class_name] = train_df["Class"].map(lambda x: 1 if class_name in x else 0)
    return train_df, list(classes)


def seed_split(train_df):
    from sklearn.model_selection import train_test_split
    # `.values`, as the seed wrote it, is an object array in the pandas of its time
    return train_test_split(np.asarray(train_df["Image"], dtype=object), test_size=0.2,
                            stratify=train_df["Class"].map(lambda x: str(sorted(list(x)))), random_state=10)


def get_img(path, size=224):
    return cv2.resize(cv2.imread(str(path)), (size, size)).astype(np.float32) / 255.0


def is_dark(img):
    return np.sum(img[:, :, 0] == 0) >= img.shape[0] * img.shape[1] / 3
