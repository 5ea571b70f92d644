"""cloud-assets: audit the labels of a multi-label image dataset through a classifier's mistakes."""
import os

# TensorFlow's C++ log level, for every process that imports the package before TensorFlow (INFO and
# WARNING lines off; the few lines it prints before its logging starts cannot be turned off)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
