from .data_manager import DataManager, DatasetWrapper, UnreadableImage, build_data_loader, read_image
from .datasets import DATASET_REGISTRY, DatasetBase, Datum, build_dataset
