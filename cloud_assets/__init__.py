"""cloud-assets: audit the labels of a multi-label image dataset through a classifier's mistakes."""
