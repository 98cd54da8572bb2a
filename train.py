"""Train or evaluate a registered trainer: arguments -> config -> trainer -> train / test.

    python train.py --root DATA --seed 1 --trainer MMRL \
        --dataset-config-file configs/datasets/oxford_pets.yaml \
        --config-file configs/trainers/MMRL/vit_b16.yaml \
        --output-dir output/run DATASET.NUM_SHOTS 16 DATASET.SUBSAMPLE_CLASSES base TASK B2N

The same arguments run data-parallel on N GPUs (or N CPU processes) with
``torchrun --nproc_per_node N train.py ...``; see the README.
"""
import os
import sys
import traceback

import torch
from torch.distributed.elastic.multiprocessing.errors import record

import datasets  # noqa: F401  (registers the datasets)
import trainers  # noqa: F401  (registers the trainers)
from mmrl.config import assemble_config, build_parser
from mmrl.dassl.engine import build_trainer
from mmrl.dassl.utils import collect_env_info, set_random_seed, setup_logger
from mmrl.dassl.utils import distributed as dist
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


@record
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        assembled = assemble_config(args)
    except (FileNotFoundError, ValueError) as err:
        print(f"Configuration error: {err}", file=sys.stderr)
        return 2
    cfg = assembled.cfg

    # Under torchrun: join the process group; only rank 0 prints and writes log.txt.
    dist.init_from_env(cfg.USE_CUDA, cfg.DISTRIBUTED.TIMEOUT)
    dist.quiet_unless_main()
    if cfg.SEED >= 0:
        print(f"Setting fixed seed: {cfg.SEED}")
        set_random_seed(cfg.SEED)
    if dist.is_main_process():
        setup_logger(cfg.OUTPUT_DIR)
    if dist.is_distributed():
        print(f"Distributed run: {dist.world_size()} processes ({torch.distributed.get_backend()})")
    dataset_values = assembled.dataset_values_line()
    if dataset_values:
        print(dataset_values)

    if torch.cuda.is_available() and cfg.USE_CUDA:
        torch.backends.cudnn.benchmark = True

    print_args(args, cfg)
    print("Collecting env info ...")
    print(f"** System info **\n{collect_env_info()}\n")

    failed = True
    try:
        trainer = build_trainer(cfg)
        if args.eval_only:
            trainer.load_model(args.model_dir, epoch=args.load_epoch)
            trainer.test()
        elif not args.no_train:
            trainer.train()
        failed = False
    except USER_ERRORS as err:
        # Bad input (a path, a key, weights, a checkpoint) is explained, not dumped as a traceback.
        if os.environ.get("MMRL_DEBUG"):
            traceback.print_exc()
        print(f"{dist.rank_prefix()}Error: {err}\n(set MMRL_DEBUG=1 to see the traceback)", file=sys.stderr)
        return 1
    except dist.PeerFailure as err:
        print(f"{dist.rank_prefix()}Error: {err}", file=sys.stderr)
        return 1
    except torch.distributed.DistError as err:
        # Another rank did not answer within DISTRIBUTED.TIMEOUT seconds.
        print(f"{dist.rank_prefix()}Error: lost the other ranks ({type(err).__name__}: {err})", file=sys.stderr)
        return 1
    finally:
        dist.shutdown(failed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
