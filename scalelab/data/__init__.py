"""Datasets: the embedded synthetic default, prepared real sets, subsets, loaders, augmentation.

source = pretraining_source("synthetic", "train", resolution=16)
indices = stratified_subset(source.labels, n=20_000, seed=0)
loader = make_loader(source, indices, 256, "cpu", shuffle=True, seed=0, drop_last=True)
augment = TrainAugment(source.num_classes, source.mean, source.std, resolution=16)
for x, y in loader:                            # uint8 (B, 3, H, W), int64 (B,)
    x, y_soft = augment(x, y, generator, host)  # float (B, 3, 16, 16), (B, K)
"""

from scalelab.data.augment import TrainAugment, to_model_input
from scalelab.data.loaders import make_loader
from scalelab.data.prepare import PrepareReport, prepare_imagenet21k, prepare_target
from scalelab.data.sources import (
    DATA_TARGETS,
    default_data_root,
    downstream_source,
    pretraining_info,
    pretraining_source,
)
from scalelab.data.subsets import stratified_subset

__all__ = [
    "DATA_TARGETS",
    "PrepareReport",
    "TrainAugment",
    "default_data_root",
    "downstream_source",
    "make_loader",
    "prepare_imagenet21k",
    "prepare_target",
    "pretraining_info",
    "pretraining_source",
    "stratified_subset",
    "to_model_input",
]
