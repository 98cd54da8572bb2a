from .base_dataset import (
    Datum,
    DatasetBase,
    dataset_path,
    dump_datum_pickle,
    generate_fewshot_dataset,
    load_pickle,
    reroot_datums,
    report_short_classes,
    split_dataset_by_label,
)
from .build import DATASET_REGISTRY, build_dataset
