"""Train or evaluate a registered trainer: arguments -> config -> trainer -> train / test.

    python train.py --root DATA --seed 1 --trainer MMRL \
        --dataset-config-file configs/datasets/oxford_pets.yaml \
        --config-file configs/trainers/MMRL/vit_b16.yaml \
        --output-dir output/run DATASET.NUM_SHOTS 16 DATASET.SUBSAMPLE_CLASSES base TASK B2N

Exit codes: 0 done, 1 bad input or environment (one line on stderr and in the log), 2 a bad
config, 128 + signal when interrupted by SIGTERM (143) or SIGINT (130); rerun to resume.

The same arguments run data-parallel on N GPUs (or N CPU processes) with
``torchrun --nproc_per_node N train.py ...``; see the README.
"""
import sys

import torch
from torch.distributed.elastic.multiprocessing.errors import record

import datasets  # noqa: F401  (registers the datasets)
import trainers  # noqa: F401  (registers the trainers)
from mmrl.cli import report, user_errors
from mmrl.config import assemble_config, build_parser, check_required
from mmrl.dassl.config import write_config_record
from mmrl.dassl.engine import build_trainer
from mmrl.dassl.engine.interrupt import RunInterrupted, interrupts_raise, note_interrupts
from mmrl.dassl.engine.preflight import check_run_folders
from mmrl.dassl.utils import collect_env_info, log_error, set_random_seed, setup_logger
from mmrl.dassl.utils import distributed as dist

USER_ERRORS = user_errors()


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


def run(args, assembled) -> None:
    cfg = assembled.cfg
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

    trainer = build_trainer(cfg)
    trainer.force = trainer.force or args.force  # MMRL_FORCE=1 set it too
    trainer.config_files = {"config_file": args.config_file, "dataset_config_file": args.dataset_config_file}
    if args.eval_only:
        if dist.is_main_process():
            write_config_record(cfg)
        trainer.load_model(args.model_dir, epoch=args.load_epoch)
        trainer.test()
    elif not args.no_train:
        trainer.train()


@record
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        assembled = assemble_config(args)
        check_required(assembled.cfg, args)
    except (FileNotFoundError, ValueError) as err:
        print(report(err, kind="Configuration error"), file=sys.stderr)
        return 2
    cfg = assembled.cfg

    with interrupts_raise():
        failed = True
        try:
            # Under torchrun: join the process group; only rank 0 prints and writes log.txt.
            dist.init_from_env(cfg.USE_CUDA, cfg.DISTRIBUTED.TIMEOUT)
            dist.quiet_unless_main()
            check_run_folders(cfg)
            run(args, assembled)
            failed = False
        except RunInterrupted as interrupt:
            log_error(f"{dist.rank_prefix()}{interrupt.message()}")
            return interrupt.exit_code
        except dist.PeerFailure as err:
            log_error(f"{dist.rank_prefix()}Error: {err}")
            return 1
        except USER_ERRORS as err:
            # Bad input (a path, a key, weights, a checkpoint) is explained, not dumped as a traceback.
            log_error(report(err, dist.rank_prefix()))
            return 1
        except Exception as err:
            # Another rank stopped or did not answer within DISTRIBUTED.TIMEOUT seconds: whatever the
            # backend raised (Gloo a RuntimeError, NCCL its own type), one line that names the rank.
            noted = note_interrupts()
            lost = dist.peer_lost(err)
            if lost is None:
                raise
            log_error(report(lost, dist.rank_prefix()))
            signum = lost.interrupted or (noted[0] if noted else 0)
            return 128 + signum if signum else 1
        finally:
            dist.shutdown(failed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
