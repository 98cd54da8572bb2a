"""Train or evaluate a registered trainer: arguments -> config -> trainer -> train / test.

    python train.py --root DATA --seed 1 --trainer MMRL \
        --dataset-config-file configs/datasets/oxford_pets.yaml \
        --config-file configs/trainers/MMRL/vit_b16.yaml \
        --output-dir output/run DATASET.NUM_SHOTS 16 DATASET.SUBSAMPLE_CLASSES base TASK B2N
"""
import os
import sys
import traceback

import torch

import datasets  # noqa: F401  (registers the datasets)
import trainers  # noqa: F401  (registers the trainers)
from mmrl.config import assemble_config, build_parser
from mmrl.dassl.engine import build_trainer
from mmrl.dassl.utils import collect_env_info, set_random_seed, setup_logger
from mmrl.model.clip_loader import CLIPWeightsUnavailable

USER_ERRORS = (FileNotFoundError, NotADirectoryError, ValueError, KeyError, CLIPWeightsUnavailable)


def print_args(args, cfg) -> None:
    print("***************")
    print("** Arguments **")
    print("***************")
    for key in sorted(args.__dict__):
        print(f"{key}: {args.__dict__[key]}")
    print("************")
    print("** Config **")
    print("************")
    print(cfg)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        assembled = assemble_config(args)
    except (FileNotFoundError, ValueError) as err:
        print(f"Configuration error: {err}", file=sys.stderr)
        return 2
    cfg = assembled.cfg

    if cfg.SEED >= 0:
        print(f"Setting fixed seed: {cfg.SEED}")
        set_random_seed(cfg.SEED)
    setup_logger(cfg.OUTPUT_DIR)
    dataset_values = assembled.dataset_values_line()
    if dataset_values:
        print(dataset_values)

    if torch.cuda.is_available() and cfg.USE_CUDA:
        torch.backends.cudnn.benchmark = True

    print_args(args, cfg)
    print("Collecting env info ...")
    print(f"** System info **\n{collect_env_info()}\n")

    try:
        trainer = build_trainer(cfg)
        trainer.config_files = {"config_file": args.config_file, "dataset_config_file": args.dataset_config_file}
        if args.eval_only:
            trainer.load_model(args.model_dir, epoch=args.load_epoch)
            trainer.test()
        elif not args.no_train:
            trainer.train()
    except USER_ERRORS as err:
        # Bad input (a path, a key, weights, a checkpoint) is explained, not dumped as a traceback.
        if os.environ.get("MMRL_DEBUG"):
            traceback.print_exc()
        print(f"Error: {err}\n(set MMRL_DEBUG=1 to see the traceback)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
