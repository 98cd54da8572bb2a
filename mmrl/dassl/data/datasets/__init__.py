from .base_dataset import (
    Datum,
    DatasetBase,
    dataset_path,
    generate_fewshot_dataset,
    load_pickle,
    split_dataset_by_label,
)
from .build import DATASET_REGISTRY, build_dataset
