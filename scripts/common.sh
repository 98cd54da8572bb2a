# shellcheck shell=bash
# Logic shared by the protocol scripts (scripts/<folder>/*.sh) and the sweeps (scripts/*.sh).
# Sourced, never run. Run every script from the repository root. It names no trainer: each
# protocol-script folder declares its trainer in its trainer.sh (see load_trainer), and the
# sweeps find a trainer's folder by that declaration.
#
# A folder's trainer.sh sets:
#   TRAINER        registered trainer name (required)
#   EVAL_ONLY=1    the trainer learns nothing: "train" jobs only evaluate and test jobs need
#                  no trained model (default 0)
#   ONE_CFG=NAME   use configs/trainers/$TRAINER/NAME.yaml for every protocol (default: the
#                  lineage's per-protocol configs)
#   IMAGENET_CFG=0 ImageNet runs the protocol's config, as every other dataset does (default 1:
#                  vit_b16_imagenet.yaml in base-to-novel and few-shot)
#   DEFAULT_SEEDS  seeds run when none is given (default: 1 2 3)
#
# Environment read here:
#   DATA     dataset root (required, except for the demo, which defaults to ./data and is
#            generated there on first use)
#   OUTPUT   output root (default: output)
#   PYTHON   interpreter (default: python)
#   OPTS     extra "KEY VALUE ..." config overrides appended after the protocol's own opts;
#            split on whitespace, so write tuples without spaces, e.g. "INPUT.SIZE (32,32)"
#   FORCE=1  rerun jobs whose results exist (their seed folder is removed first)
#   SHOTS    shots of the few-shot protocol (default: "1 2 4 8 16")
#   SEEDS    seeds run when no SEED argument is given, e.g. SEEDS="1 2" (default: the trainer's
#            DEFAULT_SEEDS)
#   LAUNCHER where the jobs run (mmrl/launch.py; the sweeps also take each as a flag, e.g.
#            --launcher pool --gpus 0,1,2,3, see sweep_args):
#            local  (default) one after another in this shell, as the lineage's scripts;
#            pool   several at a time here: GPUS=0,1,2,3 (a GPU per job) or SLOTS=N (CPU jobs,
#                   torch's threads split between them);
#            slurm  each job submitted through submitit, test jobs after their train job
#                   (afterok), so a whole table is queued at once: JOB_PARTITION, JOB_GPUS and
#                   JOB_CPUS (per job), JOB_MEM (e.g. 32G), JOB_TIME (minutes or [D-]HH:MM:SS,
#                   default 240), JOB_ACCOUNT, JOB_QOS, JOB_SBATCH_ARGS (extra sbatch options),
#                   JOB_MAX_REQUEUES (after a time limit, default 3); WAIT=1 waits for the jobs
#                   and prints the table, otherwise rerun the command once they have finished.
#            JOB_GPUS (--gpus-per-job) above 1, under any launcher: each job runs under torchrun
#            with that many processes (GPUs of GPUS in the pool, Gloo processes on CPU).
#            JOB_NODES (--nodes-per-job, default 1) above 1, under slurm only (the pool and local
#            launchers run on one machine and refuse it): each job gets that many nodes, one task
#            per node, JOB_GPUS GPUs per node. In a SLURM job of several processes or nodes,
#            every node runs the job's command (scripts/job.sh), which starts one torchrun of
#            JOB_GPUS processes; the torchruns meet at a c10d rendezvous on the job's first node
#            (port 29500 + job id % 10000). Node 0 alone keeps the job's records: it sets an
#            unfinished log aside, prints the result, and its task is the one submitit requeues
#            on a time limit; the other nodes only run (and skip a job whose results exist).
#            Under pool and slurm each job's stdout and stderr go to its folder (job.log, or
#            slurm/<jobid>_0_log.out); finished jobs are skipped and unfinished ones rerun
#            (resuming from their last saved epoch) exactly as under local.
#
# The scripts pass train.py the protocol (TASK, shots, base/new classes) and nothing of a
# method: its values are in its config files and per-dataset table, so a direct train.py call
# with the same arguments trains the same model.
#
# Output tree (the lineage's; cross-dataset runs live in the base2new tree too):
#   $OUTPUT/base2new/train_base/<dataset>/shots_16/<trainer>/<cfg>/seed<S>
#   $OUTPUT/base2new/test_new/<dataset>/shots_16/<trainer>/<cfg>/seed<S>
#   $OUTPUT/few_shot/<dataset>/shots_<K>/<trainer>/<cfg>/seed<S>

: "${PYTHON:=python}"
: "${OUTPUT:=output}"
: "${FORCE:=0}"
: "${LAUNCHER:=local}"
COMMON_DIR=$(dirname "${BASH_SOURCE[0]}")
read -r -a EXTRA_OPTS <<< "${OPTS:-}"

B2N_SHOTS=16
CROSS_SUFFIX=cross_datasets
die() {
    echo "Error: $*" >&2
    exit 1
}

# Sets B2N_DATASETS, XD_TARGETS and DG_TARGETS: the datasets of each protocol (base-to-novel and
# few-shot, cross-dataset targets, domain generalisation targets) as the dataset classes declare
# them, in the order the lineage's sweeps run them (small ones first). Asked once per sweep: the
# answer is exported to its steps.
load_protocol_datasets() {
    if [[ -z ${MMRL_PROTOCOL_DATASETS:-} ]]; then
        MMRL_PROTOCOL_DATASETS=$("$PYTHON" -m mmrl.registry datasets --protocol b2n xd dg) ||
            die "could not list the protocols' datasets ($PYTHON -m mmrl.registry datasets --protocol b2n xd dg)"
        export MMRL_PROTOCOL_DATASETS
    fi
    { read -r B2N_DATASETS; read -r XD_TARGETS; read -r DG_TARGETS; } <<< "$MMRL_PROTOCOL_DATASETS"
}

# The YAML of a dataset: configs/datasets/NAME.yaml, else NAME.yaml in a folder of
# MMRL_DATASETS_PATH (datasets kept outside the repository; see mmrl/registry.py). Without one:
# configs/datasets/NAME.yaml, and status 1.
dataset_config() {
    local folder
    local -a folders
    IFS=: read -r -a folders <<< "${MMRL_DATASETS_PATH:-}"
    for folder in configs/datasets "${folders[@]}"; do
        if [[ -n $folder && -f $folder/$1.yaml ]]; then
            echo "$folder/$1.yaml"
            return 0
        fi
    done
    echo "configs/datasets/$1.yaml"
    return 1
}

TRAINER_FILE=trainer.sh

# The trainer of a protocol-script folder: sources DIR/trainer.sh and fills in the defaults.
load_trainer() {
    local dir=$1
    [[ -f $dir/$TRAINER_FILE ]] || die "$dir has no $TRAINER_FILE declaring its trainer (TRAINER=...)"
    EVAL_ONLY=0
    ONE_CFG=
    IMAGENET_CFG=1
    DEFAULT_SEEDS=(1 2 3)
    # shellcheck source=/dev/null
    source "$dir/$TRAINER_FILE"
    [[ -n ${TRAINER:-} ]] || die "$dir/$TRAINER_FILE does not set TRAINER"
}

require_repo_root() {
    [[ -f train.py && -f parse_test_res.py ]] ||
        die "run the scripts from the repository root (the folder holding train.py), not from $(pwd)"
}

# SEEDS from an optional argument; without one, the seeds listed in $SEEDS (e.g. "1 2"), or
# the trainer's default seeds.
set_seeds() {
    local seed
    if [[ -n ${1:-} ]]; then
        [[ $1 =~ ^[0-9]+$ ]] || die "SEED must be a non-negative integer, got '$1'"
        SEEDS=("$1")
    elif [[ -n ${SEEDS:-} ]]; then
        read -r -a SEEDS <<< "$SEEDS"
        for seed in "${SEEDS[@]}"; do
            [[ $seed =~ ^[0-9]+$ ]] || die "SEEDS must list non-negative integers, got '$seed'"
        done
    else
        SEEDS=("${DEFAULT_SEEDS[@]}")
    fi
}

is_seed() {
    [[ ${1:-} =~ ^[0-9]+$ ]]
}

# DATA_ROOT from $DATA, checked for the datasets given. The demo generates its images under
# the root on first use, so for the demo alone the root is created (./data when DATA is unset).
set_data_root() {
    local dataset only_demo=1
    for dataset in "$@"; do
        [[ $dataset == demo ]] || only_demo=0
    done
    if [[ -n ${DATA:-} ]]; then
        DATA_ROOT=$DATA
    elif [[ $only_demo == 1 ]]; then
        DATA_ROOT=./data
    else
        die "DATA is not set: point it at the folder that holds your datasets, e.g." \
            "DATA=/path/to/datasets bash $0 $*  (the built-in demo needs no DATA)"
    fi
    if [[ $only_demo == 1 ]]; then
        mkdir -p -- "$DATA_ROOT"
    fi
    [[ -d $DATA_ROOT ]] || die "DATA=$DATA_ROOT is not a folder: set DATA to the folder that holds your datasets"
}

check_dataset_config() {
    local file names=()
    dataset_config "$1" > /dev/null && return 0
    for file in configs/datasets/*.yaml; do
        file=${file##*/}
        names+=("${file%.yaml}")
    done
    die "no configs/datasets/$1.yaml${MMRL_DATASETS_PATH:+ (nor in MMRL_DATASETS_PATH)}: DATASET must be one of: ${names[*]}"
}

# The trainer config of a protocol (b2n, fs, cd) for a dataset, as the lineage chooses it.
cfg_for() {
    local protocol=$1 dataset=$2
    if [[ $dataset == demo ]]; then
        # The demo serves every protocol; a trainer may give its cross-dataset protocol its own.
        if [[ $protocol == cd && -f configs/trainers/$TRAINER/demo_$CROSS_SUFFIX.yaml ]]; then
            echo "demo_$CROSS_SUFFIX"
        else
            echo demo
        fi
    elif [[ -n $ONE_CFG ]]; then
        echo "$ONE_CFG"
    elif [[ $protocol == cd ]]; then
        echo vit_b16_cross_datasets
    elif [[ $dataset == imagenet && $IMAGENET_CFG == 1 ]]; then
        echo vit_b16_imagenet
    elif [[ $protocol == fs ]]; then
        echo vit_b16_few_shot
    else
        echo vit_b16
    fi
}

# The config folder of a cross-dataset run. When the config is shared with base-to-novel
# (the demo, the zero-shot baseline) the folder gets the "_cross_datasets" suffix, so the two
# protocols never write into the same seed folders.
cd_folder() {
    if [[ $1 == *"$CROSS_SUFFIX" ]]; then echo "$1"; else echo "$1_$CROSS_SUFFIX"; fi
}

check_trainer_config() {
    [[ -f configs/trainers/$TRAINER/$1.yaml ]] || die "no trainer config configs/trainers/$TRAINER/$1.yaml"
}

# The accuracy of a finished job in DIR (nothing when it has no result), read by the project's one
# reader of a run's result (mmrl/results.py: results.json, else the newest log with a final
# result); MODE train needs the test that followed training.
job_accuracy() {
    local dir=$1 mode=$2
    [[ -d $dir ]] || return 0
    if [[ $mode == train ]]; then
        "$PYTHON" -m mmrl.results "$dir" --after-training
    else
        "$PYTHON" -m mmrl.results "$dir"
    fi
}

# One line per job outcome for the sweep's summary (when the script runs inside a sweep).
record_status() {
    if [[ -n ${SWEEP_STATUS:-} ]]; then printf '%s\t%s\t%s\t%s\n' "$@" >> "$SWEEP_STATUS"; fi
}

# The id of the SLURM job that is still queued or running for the job folder DIR (empty when
# none; a job never counts itself).
slurm_queued() {
    if [[ -f $1/slurm/job_id ]]; then "$PYTHON" -m mmrl.launch in-flight "$1"; fi
}

# RUNNER: what runs a job's train.py. JOB_GPUS (--gpus-per-job) above 1: the job runs
# data-parallel under torchrun, one process per GPU (Gloo processes on CPU); torchrun
# --standalone picks a free port, so jobs side by side in a pool do not meet each other's
# rendezvous. In a SLURM job of several processes or nodes, mmrl/launch.py (SweepJob) sets
# JOB_RDZV_ENDPOINT, JOB_RDZV_ID, JOB_NODES and JOB_NODE from SLURM's variables on each node:
# every node runs one torchrun of JOB_GPUS processes, and they meet at the c10d rendezvous on
# the job's first node. The torchrun is mmrl/torchrun.py: torch's launcher, whose end, when a rank
# fails, is one line naming that rank and its exit status instead of the agent's traceback.
# (JOB_GPUS and JOB_NODES were checked by check_launcher before the sweep planned its jobs.)
job_runner() {
    local gpus=1
    if [[ ${JOB_GPUS:-} =~ ^[0-9]+$ && $JOB_GPUS -gt 1 ]]; then gpus=$JOB_GPUS; fi
    RUNNER=("$PYTHON")
    if [[ -n ${JOB_RDZV_ENDPOINT:-} ]]; then
        RUNNER=("$PYTHON" -m mmrl.torchrun --nnodes "${JOB_NODES:-1}" --nproc_per_node "$gpus"
            --rdzv_backend c10d --rdzv_endpoint "$JOB_RDZV_ENDPOINT" --rdzv_id "$JOB_RDZV_ID")
    elif [[ $gpus -gt 1 ]]; then
        RUNNER=("$PYTHON" -m mmrl.torchrun --standalone --nproc_per_node "$gpus")
    fi
}

# run_job TAG DIR MODE SEED DATASET CFG MODEL_DIR OPT...
#   MODE train: train, then test (train.py's normal run); MODE eval: --eval-only, loading
#   MODEL_DIR when not empty. Skips finished jobs, reruns unfinished ones, prints one summary line.
#   Inside a pool or SLURM sweep the job is added to the sweep's plan instead of run here (the
#   launcher runs it through scripts/job.sh, which comes back here).
run_job() {
    local tag=$1 dir=$2 mode=$3 seed=$4 dataset=$5 cfg=$6 model_dir=$7
    shift 7
    local acc start rc queued first=1
    # Another node of a multi-node SLURM job: it starts its torchrun and nothing else; node 0
    # keeps the job's records (the unfinished log set aside, the result line). Both see the
    # same results folder, so they take the same skip decision.
    if [[ ${JOB_NODE:-0} != 0 ]]; then first=0; fi
    # A folder whose SLURM job is still queued or running is left to that job.
    queued=$(slurm_queued "$dir")
    if [[ -n $queued ]]; then
        echo "[$tag] already queued or running as SLURM job $queued (not submitted again) -> $dir"
        record_status queued "$tag" "$dir" "SLURM job $queued"
        return 0
    fi
    if [[ -d $dir ]]; then
        acc=$(job_accuracy "$dir" "$mode")
        if [[ $first == 0 ]]; then
            if [[ -n $acc ]]; then
                echo "[$tag] results exist at $dir (node $JOB_NODE skips the job too)"
                return 0
            fi
        elif [[ $FORCE == 1 ]]; then
            echo "FORCE=1: removing $dir and running the job again"
            rm -rf -- "$dir"
        elif [[ -n $acc ]]; then
            echo "Oops! The results exist at ${dir} (so skip this job)"
            echo "[$tag] accuracy ${acc}% (existing results) -> $dir"
            record_status skipped "$tag" "$dir" "accuracy ${acc}%"
            return 0
        elif [[ -f $dir/log.txt ]]; then
            # Kept aside rather than deleted; a checkpoint left by the run lets the engine resume.
            local kept
            kept="$dir/log.txt.unfinished-$(date +%Y-%m-%d-%H-%M-%S)"
            echo "Unfinished run at $dir (its log.txt has no final '=> result'): running it again (old log kept as $kept)"
            mv -- "$dir/log.txt" "$kept"
        fi
    fi

    if [[ -n ${SWEEP_PLAN:-} ]]; then
        # TAG DIR MODE NEEDS COMMAND: NEEDS is the folder of the job this one waits for.
        {
            printf '%q ' "$tag" "$dir" "$mode" "$model_dir" bash "$COMMON_DIR/job.sh" "$TRAINER" "$DATA_ROOT" \
                "$tag" "$dir" "$mode" "$seed" "$dataset" "$cfg" "$model_dir" "$@" "${EXTRA_OPTS[@]}"
            echo
        } >> "$SWEEP_PLAN"
        echo "$dir" >> "$SWEEP_DIR/planned"
        echo "[$tag] planned ($LAUNCHER) -> $dir"
        return 0
    fi

    job_runner
    local cmd=("${RUNNER[@]}" train.py --root "$DATA_ROOT" --seed "$seed" --trainer "$TRAINER"
        --dataset-config-file "$(dataset_config "$dataset")"
        --config-file "configs/trainers/$TRAINER/$cfg.yaml" --output-dir "$dir")
    if [[ -n $model_dir ]]; then cmd+=(--model-dir "$model_dir"); fi
    if [[ $mode == eval ]]; then cmd+=(--eval-only); fi
    cmd+=("$@" "${EXTRA_OPTS[@]}")

    echo "Running: ${cmd[*]}"
    start=$SECONDS
    rc=0
    "${cmd[@]}" || rc=$?
    if [[ $first == 0 ]]; then
        echo "[$tag] node $JOB_NODE: its torchrun exited with $rc ($((SECONDS - start))s) -> $dir"
        return "$rc"
    fi
    if [[ $rc -ne 0 ]]; then
        echo "[$tag] FAILED (exit $rc, $((SECONDS - start))s) -> $dir" >&2
        if [[ -f $dir/log.txt ]]; then
            record_status failed "$tag" "$dir" "$dir/log.txt (exit $rc)"
        else
            record_status failed "$tag" "$dir" "exit $rc before train.py wrote $dir/log.txt: its error is in the output above"
        fi
        exit "$rc"
    fi
    acc=$(job_accuracy "$dir" "$mode")
    if [[ -z $acc ]]; then
        record_status failed "$tag" "$dir" "$dir/log.txt (exit 0, no final result)"
        die "[$tag] train.py exited normally but $dir/log.txt has no final '=> result' accuracy"
    fi
    echo "[$tag] accuracy ${acc}% ($((SECONDS - start))s) -> $dir"
    record_status done "$tag" "$dir" "accuracy ${acc}%"
}

# The lineage's per-folder summary of the seeds of a run; inside a pool or SLURM sweep, once
# the sweep's jobs have run.
summarize() {
    if [[ -n ${SWEEP_PLAN:-} ]]; then
        echo "$1" >> "$SWEEP_DIR/folders"
    else
        summarize_now "$1"
    fi
}

summarize_now() {
    "$PYTHON" parse_test_res.py "$1/"
}

# A test job needs the trained model of the same seed.
require_trained() {
    local dir=$1 hint=$2
    # In a pool or SLURM sweep the model may come from a job of the same sweep, or from a
    # SLURM job still queued: the test job waits for it.
    if [[ -n ${SWEEP_PLAN:-} ]] && { grep -qxF -- "$dir" "$SWEEP_DIR/planned" || [[ -n $(slurm_queued "$dir") ]]; }; then
        return 0
    fi
    [[ -d $dir ]] || die "no trained model at $dir: run '$hint' first"
    [[ -n $(job_accuracy "$dir" train) ]] ||
        die "the training run at $dir did not finish (no final '=> result' in its log.txt): run '$hint' again, with FORCE=1"
}

# The mode of a job that trains (eval for a trainer that learns nothing).
train_mode() {
    if [[ $EVAL_ONLY == 1 ]]; then echo eval; else echo train; fi
}

script_dir() {
    dirname "$0"
}

# ---------------------------------------------------------------------------------------------
# Protocols. Each takes the script's arguments.

# The arguments DATASET [SEED] of a per-dataset protocol (b2n, fs), checked: sets DATASET, its
# trainer config CFG, SEEDS and DATA_ROOT.
dataset_protocol_setup() {
    local protocol=$1
    shift
    [[ $# -ge 1 && $# -le 2 ]] || die "usage: bash $0 DATASET [SEED]"
    DATASET=$1
    set_seeds "${2:-}"
    require_repo_root
    check_dataset_config "$DATASET"
    set_data_root "$DATASET"
    CFG=$(cfg_for "$protocol" "$DATASET")
    check_trainer_config "$CFG"
}

base2new_train() {
    dataset_protocol_setup b2n "$@"
    local dataset=$DATASET cfg=$CFG seed dir
    protocol_begin
    for seed in "${SEEDS[@]}"; do
        dir=$OUTPUT/base2new/train_base/$dataset/shots_$B2N_SHOTS/$TRAINER/$cfg/seed$seed
        run_job "$TRAINER $dataset seed$seed base2new_train" "$dir" "$(train_mode)" "$seed" "$dataset" "$cfg" "" \
            DATASET.NUM_SHOTS "$B2N_SHOTS" DATASET.SUBSAMPLE_CLASSES base TASK B2N
    done
    summarize "$(dirname "$dir")"
    protocol_end
}

base2new_test() {
    dataset_protocol_setup b2n "$@"
    local dataset=$DATASET cfg=$CFG seed dir tail model_dir
    protocol_begin
    for seed in "${SEEDS[@]}"; do
        tail=$dataset/shots_$B2N_SHOTS/$TRAINER/$cfg/seed$seed
        dir=$OUTPUT/base2new/test_new/$tail
        model_dir=""
        if [[ $EVAL_ONLY != 1 ]]; then
            model_dir=$OUTPUT/base2new/train_base/$tail
            require_trained "$model_dir" "bash $(script_dir)/base2new_train.sh $dataset $seed"
        fi
        run_job "$TRAINER $dataset seed$seed base2new_test" "$dir" eval "$seed" "$dataset" "$cfg" "$model_dir" \
            DATASET.NUM_SHOTS "$B2N_SHOTS" DATASET.SUBSAMPLE_CLASSES new TASK B2N
    done
    summarize "$(dirname "$dir")"
    protocol_end
}

few_shot() {
    dataset_protocol_setup fs "$@"
    local dataset=$DATASET cfg=$CFG seed dir shots
    protocol_begin
    for shots in ${SHOTS:-1 2 4 8 16}; do
        [[ $shots =~ ^[1-9][0-9]*$ ]] || die "SHOTS must list positive integers, got '$shots'"
        for seed in "${SEEDS[@]}"; do
            dir=$OUTPUT/few_shot/$dataset/shots_$shots/$TRAINER/$cfg/seed$seed
            run_job "$TRAINER $dataset shots$shots seed$seed few_shot" "$dir" train "$seed" "$dataset" "$cfg" "" \
                DATASET.NUM_SHOTS "$shots" TASK FS
        done
        summarize "$(dirname "$dir")"
    done
    protocol_end
}

# The source of cross-dataset runs: ImageNet, or the demo for the demo (its own source and target).
cd_source_of() {
    if [[ $1 == demo ]]; then echo demo; else echo imagenet; fi
}

# Arguments [SOURCE] [SEED] (SOURCE: imagenet, the default, or demo).
cross_datasets_train() {
    local source=imagenet cfg folder seed dir
    if [[ $# -ge 1 ]] && ! is_seed "$1"; then
        source=$1
        shift
    fi
    [[ $# -le 1 ]] || die "usage: bash $0 [imagenet|demo] [SEED]"
    [[ $source == imagenet || $source == demo ]] ||
        die "the cross-dataset source is imagenet (or demo for the built-in demo), got '$source'"
    set_seeds "${1:-}"
    require_repo_root
    check_dataset_config "$source"
    set_data_root "$source"
    cfg=$(cfg_for cd "$source")
    check_trainer_config "$cfg"
    folder=$(cd_folder "$cfg")
    protocol_begin
    for seed in "${SEEDS[@]}"; do
        dir=$OUTPUT/base2new/train_base/$source/shots_$B2N_SHOTS/$TRAINER/$folder/seed$seed
        run_job "$TRAINER $source seed$seed cross_datasets_train" "$dir" "$(train_mode)" "$seed" "$source" "$cfg" "" \
            DATASET.NUM_SHOTS "$B2N_SHOTS" TASK CD
    done
    summarize "$(dirname "$dir")"
    protocol_end
}

# Arguments [DATASET] [SEED]; no DATASET: the 10 cross-dataset targets and the 4 ImageNet variants.
cross_datasets_test() {
    load_protocol_datasets
    local targets="$XD_TARGETS $DG_TARGETS" dataset source cfg folder seed dir model_dir
    if [[ $# -ge 1 ]] && ! is_seed "$1"; then
        targets=$1
        shift
    fi
    [[ $# -le 1 ]] || die "usage: bash $0 [DATASET] [SEED]"
    set_seeds "${1:-}"
    require_repo_root
    for dataset in $targets; do
        check_dataset_config "$dataset"
    done
    # shellcheck disable=SC2086  # the target list is split on purpose
    set_data_root $targets
    protocol_begin
    for dataset in $targets; do
        source=$(cd_source_of "$dataset")
        cfg=$(cfg_for cd "$dataset")
        check_trainer_config "$cfg"
        folder=$(cd_folder "$cfg")
        for seed in "${SEEDS[@]}"; do
            dir=$OUTPUT/base2new/test_new/$dataset/shots_$B2N_SHOTS/$TRAINER/$folder/seed$seed
            model_dir=""
            if [[ $EVAL_ONLY != 1 ]]; then
                model_dir=$OUTPUT/base2new/train_base/$source/shots_$B2N_SHOTS/$TRAINER/$folder/seed$seed
                require_trained "$model_dir" "bash $(script_dir)/cross_datasets_train.sh $source $seed"
            fi
            run_job "$TRAINER $dataset seed$seed cross_datasets_test" "$dir" eval "$seed" "$dataset" "$cfg" "$model_dir" \
                DATASET.NUM_SHOTS "$B2N_SHOTS" TASK CD
        done
        summarize "$(dirname "$dir")"
    done
    protocol_end
}

# ---------------------------------------------------------------------------------------------
# Sweeps (scripts/*.sh TRAINER [SEED]).

# The protocol-script folders, one a line: those with a trainer.sh.
trainer_folders() {
    local file
    for file in scripts/*/"$TRAINER_FILE"; do
        [[ -f $file ]] && dirname "$file"
    done
}

# The trainer a protocol-script folder declares.
trainer_of_folder() {
    (
        # shellcheck source=/dev/null
        source "$1/$TRAINER_FILE"
        echo "${TRAINER:-}"
    )
}

# The trainers that have protocol scripts, as "A|B|C" (for usage lines).
known_trainers() {
    local dir names=()
    while read -r dir; do
        names+=("$(trainer_of_folder "$dir")")
    done < <(trainer_folders)
    (IFS='|'; echo "${names[*]}")
}

# The protocol-script folder of a trainer.
trainer_scripts() {
    local dir
    while read -r dir; do
        if [[ $(trainer_of_folder "$dir") == "${1:-}" ]]; then
            echo "$dir"
            return 0
        fi
    done < <(trainer_folders)
    die "TRAINER must be one of $(known_trainers), got '${1:-}' (no scripts/*/$TRAINER_FILE declares it)"
}

# Splits the datasets given into HAVE_DATA and NO_DATA (data missing under $DATA), asking the
# dataset classes themselves where their files live.
sort_by_data() {
    local dataset configs=() present only_demo=1
    HAVE_DATA=()
    NO_DATA=()
    for dataset in "$@"; do
        configs+=("$(dataset_config "$dataset")")
        [[ $dataset == demo ]] || only_demo=0
    done
    # The demo is generated under DATA on first use (so it is always there); any other dataset
    # needs DATA to exist.
    if [[ $only_demo == 1 ]]; then
        HAVE_DATA=("$@")
        return 0
    fi
    if [[ -n ${DATA:-} && ! -d $DATA ]]; then
        die "DATA=$DATA is not a folder: set DATA to the folder that holds your datasets (nothing was run)"
    fi
    present=$("$PYTHON" -m mmrl.data.check --root "${DATA:-./data}" --present-configs "${configs[@]}") ||
        die "could not check which datasets are under DATA=${DATA:-}"
    for dataset in "$@"; do
        if grep -qxF "$(dataset_config "$dataset")" <<< "$present"; then
            HAVE_DATA+=("$dataset")
        else
            NO_DATA+=("$dataset")
        fi
    done
    if [[ -z ${DATA:-} && ${#NO_DATA[@]} -gt 0 ]]; then
        die "DATA is not set: point it at the folder that holds your datasets, e.g. DATA=/path/to/datasets bash $0 ..." \
            "(or restrict the sweep to the built-in demo with DATASETS=demo)"
    fi
}

# Runs "bash SCRIPT ARGS..."; a failure is recorded (and returned) instead of ending the sweep.
sweep_step() {
    if ! bash "$@"; then
        FAILED+=("bash $*")
        return 1
    fi
}

# The protocol's table: parse_test_res.py ARGS, once every job of the sweep has ended (under
# SLURM without WAIT=1, a rerun of the sweep prints it).
sweep_table() {
    sweep_complete || return 0
    echo
    "$PYTHON" parse_test_res.py "$@" --trainer "$TRAINER" "$OUTPUT" || FAILED+=("$PYTHON parse_test_res.py $* $OUTPUT")
}

# ---------------------------------------------------------------------------------------------
# Launchers (see LAUNCHER at the top). A sweep plans its jobs through the protocol scripts it
# runs (run_job), mmrl/launch.py runs the plan, and the summary is read from the status file
# every job's outcome goes to, whichever launcher ran it.

# The flags of the sweeps, each the same as an environment variable.
declare -A LAUNCH_FLAGS=([launcher]=LAUNCHER [gpus]=GPUS [slots]=SLOTS [partition]=JOB_PARTITION
    [gpus-per-job]=JOB_GPUS [nodes-per-job]=JOB_NODES [cpus-per-job]=JOB_CPUS [mem]=JOB_MEM [time]=JOB_TIME
    [account]=JOB_ACCOUNT [qos]=JOB_QOS [sbatch-args]=JOB_SBATCH_ARGS
    [max-requeues]=JOB_MAX_REQUEUES [wait]=WAIT)

# Moves the launcher flags (--name VALUE or --name=VALUE) out of the arguments into their
# environment variables; ARGS holds the other arguments.
sweep_args() {
    local name value
    ARGS=()
    while [[ $# -gt 0 ]]; do
        if [[ $1 != --* ]]; then
            ARGS+=("$1")
            shift
            continue
        fi
        name=${1#--}
        if [[ $name == *=* ]]; then
            value=${name#*=}
            name=${name%%=*}
            shift
        else
            [[ $# -ge 2 ]] || die "$1 needs a value"
            value=$2
            shift 2
        fi
        [[ -n ${LAUNCH_FLAGS[$name]:-} ]] ||
            die "unknown option --$name: the options are $(printf -- '--%s ' "${!LAUNCH_FLAGS[@]}" | tr ' ' '\n' | sort | xargs)"
        export "${LAUNCH_FLAGS[$name]}=$value"
    done
}

# The launcher and job settings, checked by mmrl/launch.py before anything is planned or run
# (under LAUNCHER=local only when a job setting is given: --nodes-per-job 2, for one, needs SLURM).
check_launcher() {
    if [[ $LAUNCHER != local || -n ${JOB_GPUS:-} || -n ${JOB_NODES:-} ]]; then
        "$PYTHON" -m mmrl.launch check || exit 1
    fi
}

# Starts a sweep: checks the launcher, creates the status file and (pool, slurm) the plan, both
# passed on to the protocol scripts the sweep runs.
sweep_begin() {
    check_launcher
    SWEEP_DIR=$(mktemp -d "${TMPDIR:-/tmp}/mmrl-sweep.XXXXXX")
    trap 'rm -rf -- "$SWEEP_DIR"' EXIT
    SWEEP_STATUS=$SWEEP_DIR/status
    : > "$SWEEP_STATUS"
    : > "$SWEEP_DIR/planned"
    : > "$SWEEP_DIR/folders"
    if [[ $LAUNCHER != local ]]; then
        SWEEP_PLAN=$SWEEP_DIR/plan
        : > "$SWEEP_PLAN"
        export SWEEP_PLAN
    fi
    export SWEEP_DIR SWEEP_STATUS LAUNCHER
    FAILED=()
    if [[ -z ${NO_DATA+x} ]]; then NO_DATA=(); fi
}

# Whether every job of the sweep has ended (none is left queued in SLURM).
sweep_complete() {
    ! cut -f1 "$SWEEP_STATUS" | grep -qxE 'submitted|queued'
}

# Runs the plan (pool, slurm), then, once every job has ended, the per-folder summaries of the
# seeds. A failed job is in the status file; a launcher that could not run is recorded here.
sweep_launch() {
    [[ -n ${SWEEP_PLAN:-} ]] || return 0
    local rc=0 folder
    "$PYTHON" -m mmrl.launch run --plan "$SWEEP_PLAN" --status "$SWEEP_STATUS" || rc=$?
    if [[ $rc -gt 1 ]]; then
        FAILED+=("the $LAUNCHER launcher (exit $rc, see its message above)")
    elif [[ $rc == 0 ]] && sweep_complete; then
        awk '!seen[$0]++' "$SWEEP_DIR/folders" | while read -r folder; do
            summarize_now "$folder" || true
        done
    fi
    return 0
}

# The summary of a sweep: how many jobs were done, skipped, failed (each with its log) or are
# still queued; non-zero when anything failed.
sweep_report() {
    local status tag dir detail done=0 skipped=0 failed=() queued=0
    while IFS=$'\t' read -r status tag dir detail; do
        case $status in
            done) done=$((done + 1)) ;;
            skipped) skipped=$((skipped + 1)) ;;
            failed) failed+=("$tag: $detail") ;;
            submitted | queued) queued=$((queued + 1)) ;;
        esac
    done < "$SWEEP_STATUS"
    echo
    echo "Sweep summary ($LAUNCHER): $done done, $skipped skipped (existing results), ${#failed[@]} failed$(
        [[ $queued == 0 ]] || echo ", $queued queued in SLURM")"
    if [[ ${#NO_DATA[@]} -gt 0 ]]; then
        echo "Skipped (no data folder under DATA=${DATA:-}): ${NO_DATA[*]}"
    fi
    if [[ ${#failed[@]} -gt 0 ]]; then
        echo "Failed jobs (with their logs):"
        printf '  %s\n' "${failed[@]}"
    fi
    if [[ ${#FAILED[@]} -gt 0 ]]; then
        echo "Failed steps:"
        printf '  %s\n' "${FAILED[@]}"
    fi
    if [[ $queued -gt 0 ]]; then
        echo "The table comes once the SLURM jobs have finished (squeue shows them): rerun the same command" \
            "then (finished jobs are skipped, queued ones left alone), or run with WAIT=1 to wait for them."
    fi
    [[ ${#failed[@]} -eq 0 && ${#FAILED[@]} -eq 0 ]]
}

# A protocol script run on its own under LAUNCHER=pool or slurm is a sweep of its own jobs:
# protocol_begin before its first job, protocol_end after its last.
protocol_begin() {
    OWN_SWEEP=0
    if [[ $LAUNCHER != local && -z ${SWEEP_PLAN:-} ]]; then
        sweep_begin
        OWN_SWEEP=1
    elif [[ -z ${SWEEP_DIR:-} ]]; then
        check_launcher
    fi
}

protocol_end() {
    [[ $OWN_SWEEP == 1 ]] || return 0
    sweep_launch
    sweep_report
}
