"""The dataset as the assets read it: train.csv's labels and the notebook's split (`labels`), masks
in run-length encoding (`rle`), images decoded and resized once (`images`), dark images (`dark`)."""
