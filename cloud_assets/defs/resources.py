"""Resources: where the dataset is, how to read it, and the array store (the IO manager)."""

from collections import Counter
from pathlib import Path

import dagster as dg

from cloud_assets import settings
from cloud_assets.plumbing import sharding
from cloud_assets.lib.data import images, labels
from cloud_assets.lib.classifier import model as model_lib
from cloud_assets.lib.data.labels import DatasetError
from cloud_assets.lib.shards import RECORD, Shards
from cloud_assets.lib.store import Bundle, Store
from cloud_assets.settings import Settings


class DatasetResource(dg.ConfigurableResource):
    """A dataset folder in the Kaggle layout: train.csv, train_images/, test_images/."""

    data_dir: str
    class_names: list[str] = list(labels.NOTEBOOK_CLASS_ORDER)  # the model's output order (CLOUD_ASSETS_CLASSES)
    input_size: str = "224x224"  # HEIGHTxWIDTH: the model input the images and masks are resized to
    image_height: int = 0     # original image size; 0: the most common size among train_images/
    image_width: int = 0
    review_path: str = ""     # the reviewer's label_review.csv; empty: <data_dir>/label_review.csv
    audit_predictions: str = ""  # out-of-fold predictions made elsewhere (lib.audit.network.ImportedPredictions); empty: train

    @property
    def review_file(self) -> Path:
        return Path(self.review_path) if self.review_path else self.root / "label_review.csv"

    @property
    def root(self) -> Path:
        if not self.data_dir:
            raise DatasetError(settings.naming_variables(
                "dataset.data_dir is not set; it must be a folder with train.csv, train_images/ and test_images/"))
        root = Path(self.data_dir)
        if not root.exists():
            raise DatasetError(settings.naming_variables(
                f"{root}: dataset folder does not exist; dataset.data_dir must be a folder with train.csv, "
                f"train_images/ and test_images/"))
        if not root.is_dir():
            raise DatasetError(settings.naming_variables(
                f"{root}: is a file; dataset.data_dir must be a folder with train.csv, train_images/ and "
                f"test_images/"))
        return root

    @property
    def train_csv(self) -> Path:
        return self.root / "train.csv"

    def image_dir(self, split: str) -> Path:
        return self.root / ("test_images" if split == "test" else "train_images")

    @property
    def input_shape(self) -> tuple[int, int]:
        """(height, width) of the model input, from `input_size`."""
        try:
            return images.parse_size(self.input_size)
        except ValueError as e:
            raise ValueError(settings.naming_variables(f"dataset.input_size={e}")) from None

    def test_images(self) -> list[str]:
        return images.jpeg_names(self.image_dir("test"))

    def original_shape(self) -> tuple[int, int]:
        """(height, width) of the original images: configured, or the most common in train_images/."""
        if self.image_height and self.image_width:
            return self.image_height, self.image_width
        folder = self.image_dir("train")
        sizes: Counter[tuple[int, int]] = Counter()
        for p in (folder / name for name in images.jpeg_names(folder)[:200]):
            try:
                sizes[images.jpeg_size(p)] += 1
            except DatasetError:
                continue  # reported by the image checks
        if not sizes:
            raise DatasetError(f"{folder}: no readable .jpg images; expected the labelled images of train.csv")
        return sizes.most_common(1)[0][0]


class ModelResource(dg.ConfigurableResource):
    """The classifier file: `.keras`, or `.h5` (Keras 2 files load via tf_keras)."""

    path: str
    gradcam_layer: str = ""     # empty: the last convolution or concatenation layer
    batch_size: int = 32        # images per forward/backward pass
    safe_mode: int = 1          # 1: refuse Lambda layers that carry code; 0: allow them (files you trust)

    def file(self) -> Path:
        """The model file; ModelError, naming the variable, if it is missing or a folder."""
        try:
            return model_lib.check_path(self.path)
        except model_lib.ModelError as e:
            raise model_lib.ModelError(settings.naming_variables(str(e))) from None

    def load(self, dataset: "DatasetResource"):
        """(model, ModelInfo), checked against the dataset's classes and image size."""
        if self.batch_size < 1:
            raise ValueError(settings.naming_variables(f"model.batch_size={self.batch_size}: expected a whole "
                                                       f"number of images, at least 1"))
        try:  # errors are named once, here
            net = model_lib.load(model_lib.check_path(self.path), safe_mode=bool(self.safe_mode))
            info = model_lib.check(net, self.path, len(dataset.class_names), dataset.input_shape,
                                   self.gradcam_layer or None)
        except model_lib.ModelError as e:
            raise model_lib.ModelError(settings.naming_variables(str(e))) from None
        return net, info


class VarDir(dg.ConfigurableResource):
    """The folder for the array store (`store/`) and the built site (`site/`)."""

    path: str = settings.DEFAULT_VAR_DIR

    @property
    def store(self) -> Store:
        root = Path(self.path)
        if root.exists() and not root.is_dir():
            raise NotADirectoryError(settings.naming_variables(
                f"{root}: is a file; var.path must be a folder (it holds the array store, store/, and the "
                f"report site, site/)"))
        return Store(root / "store")

    def staging(self, key: dg.AssetKey):
        """A staging bundle for the asset `key` that writes its arrays batch by batch, then returns it
        (the IO manager publishes it); removed if the asset fails on the way."""
        return self.store.staging(key.to_python_identifier())


class ArrayStore(dg.ConfigurableIOManager):
    """Stores each asset as a folder of .npy/.parquet/.json under `<var_dir>/store`, published atomically.

    An asset returns either a dict of arrays / DataFrames / JSON-able values, or a staging `Bundle`
    it filled itself (from `VarDir.staging`); a partitioned asset, one of those per shard key.
    Inputs load as `Bundle`s, a partitioned asset's as `Shards`.
    """

    var: VarDir
    shards: int = 1  # CLOUD_ASSETS_SHARDS: a per-image value of another count is stale

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        name = context.asset_key.to_python_identifier()
        if not context.has_asset_partitions:
            path, nbytes, per_image = self._publish(name, obj)
            context.add_output_metadata({"path": dg.MetadataValue.path(str(path.resolve())),
                                         "stored_mb": round(nbytes / 2 ** 20, 2)})
        else:
            # a shard's value is published as `<asset>@<shard>`; one step may compute several shards
            published = [self._publish(f"{name}@{key}", obj[key]) for key in context.asset_partition_keys]
            per_image = published[0][2]
            context.add_output_metadata({"stored_mb": round(sum(p[1] for p in published) / 2 ** 20, 2),
                                         "stored_in": dg.MetadataValue.path(str(self.var.store.root.resolve()))})
        if per_image:  # a per-image asset: the values of another shard count are stale now
            for stale in sharding.stale(name, self.var.store.stored(name), self.shards):
                context.log.info(f"{name}: removing {stale}, computed with another shard count")
                self.var.store.remove(stale)

    def _publish(self, name: str, obj) -> tuple[Path, int, bool]:
        """(the published folder, its size, whether it is a per-image value), measured before it is
        published: a run publishing the same asset at once may remove it right after."""
        store = self.var.store
        if isinstance(obj, Bundle):
            staged = obj
        else:
            with store.staging(name) as staged:
                for key, value in obj.items():
                    staged.put(key, value)
        nbytes, per_image = staged.nbytes(), staged.has(RECORD)
        return store.publish(name, staged).path, nbytes, per_image

    def load_input(self, context: dg.InputContext):
        """A Bundle; for a partitioned asset, its shards (`lib.shards.Shards`): those of the step's
        partitions, or all of them for a dataset-wide step. PartitioningError when the values of a
        per-image asset were computed with another shard count than the current one."""
        name = context.asset_key.to_python_identifier()
        store = self.var.store
        keys = context.asset_partition_keys if context.has_asset_partitions else [None]
        bundles = {}
        for key in keys:
            stored = name if key is None else f"{name}@{key}"
            try:
                bundles[key] = store.get(stored)
            except FileNotFoundError:
                sharding.check_stored(name, self._records(name), self.shards)
                raise
            if bundles[key].has(RECORD):
                sharding.check_stored(name, {stored: bundles[key].json(RECORD)}, self.shards)
        return Shards(bundles) if context.has_asset_partitions else bundles[None]

    def _records(self, name: str) -> dict:
        """Stored name -> partitioning record (None: not a per-image value) of every value of `name`."""
        values = {stored: self.var.store.get(stored) for stored in self.var.store.stored(name)}
        return {stored: b.json(RECORD) if b.has(RECORD) else None for stored, b in values.items()}


def build_resources(config: Settings, **dataset_config) -> dict:
    """The resources of the definitions, their fields filled from `config` (a field it leaves unset
    keeps its default); `dataset_config`: further fields of the dataset (the images' size; None: unset)."""
    dataset = {"class_names": list(config.classes), **settings.resource_fields(config, "dataset"),
               **{k: v for k, v in dataset_config.items() if v is not None}}
    var = VarDir(**settings.resource_fields(config, "var"))
    return {"io_manager": ArrayStore(var=var, shards=config.shards), "var": var, "dataset": DatasetResource(**dataset),
            "model": ModelResource(**settings.resource_fields(config, "model"))}


# what the multiprocess executor's fork server imports once per run, before it forks the step processes
PRELOAD = ("cloud_assets.definitions", "cloud_assets.instance", "sklearn.metrics")


def executor(config: Settings):
    """CLOUD_ASSETS_EXECUTOR: unset, the multiprocess executor, whose step processes fork from a
    server that has imported, once per run, the definitions, the instance's storage (which every step
    opens first: `bench/step_start.py`) and scikit-learn's metrics (which the analysis steps, cleanlab
    and the report use); `k8s`, a pod per step
    (deploy/helm/); `celery`, Celery workers behind the broker CLOUD_ASSETS_CELERY_BROKER (the documentation's Deploying page)."""
    if config.executor == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    if config.executor == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured({"broker": config.celery_broker, "backend": config.celery_backend},
                                          name="celery")
    return dg.multiprocess_executor.configured({"start_method": {"forkserver": {"preload_modules": list(PRELOAD)}}},
                                               name="multiprocess")
