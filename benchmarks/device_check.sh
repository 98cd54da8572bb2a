#!/usr/bin/env bash
# One command that checks a GPU machine (under 5 minutes on one GPU):
#   1. installs what it needs (this package with its test extra) if it is not importable;
#   2. runs the GPU-marked tests (the precision matrix, fused attention and RECOMPUTE on CUDA);
#   3. runs the benchmark at ViT-B/16 shapes with random weights for fp32 / amp / bf16 x batch 4 and 32
#      x 50 and 1000 classes, the text side at 1000 classes before and after the shared prefix, and the
#      training step under torchrun at 1000 classes (NCCL, one process per GPU: one, or two with 2 GPUs);
#   4. prints one table (step time, training images/s, evaluation images/s, peak GPU memory) and, last,
#      one line saying PASS or FAIL.
#
#   bash benchmarks/device_check.sh          # on a machine with a CUDA GPU
#   bash benchmarks/device_check.sh --cpu    # dry run on CPU: the same steps, small enough to finish here
#
# The --cpu mode runs the CPU side of the same test files (the GPU-marked ones are skipped there), the
# benchmark with the miniature CLIP and few steps, and prints the same table: it shows the command works
# end to end before a GPU is ever available. Its figures are not GPU figures.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

MODE=gpu
for arg in "$@"; do
    case "$arg" in
        --cpu) MODE=cpu ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "device_check: unknown argument $arg (use --cpu for the dry run on CPU)"; exit 2 ;;
    esac
done
PY=${PYTHON:-python}
failures=()

if ! $PY -c "import torch, clip, yacs, pytest" 2>/dev/null; then
    echo "== installing the package and its test extra"
    $PY -m pip install -q -e ".[test]" || failures+=("install")
fi

if [ "$MODE" = gpu ]; then
    if ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
        echo "device_check: no CUDA GPU is visible to torch; run with --cpu for the dry run"
        echo "device_check: FAIL (no GPU)"
        exit 1
    fi
    $PY -c "import torch; print('GPU:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
    TESTS=(-m gpu tests/test_precision.py tests/test_attention_kernels.py)
    DEVICE=cuda; SPEC=vit-b16; STEPS=5; EVAL_IMAGES=256; TEXT_STEPS=3
else
    echo "GPU: none (dry run on CPU: figures are CPU figures of the miniature CLIP)"
    TESTS=(-m "not gpu" tests/test_precision.py tests/test_attention_kernels.py)
    DEVICE=cpu; SPEC=mini; STEPS=1; EVAL_IMAGES=8; TEXT_STEPS=1
fi

echo "== tests: pytest ${TESTS[*]}"
$PY -m pytest -q "${TESTS[@]}" || failures+=("tests")

echo "== benchmark: $SPEC, $DEVICE"
rows=()
for prec in fp32 amp bf16; do
    for batch in 4 32; do
        for classes in 50 1000; do
            if row=$($PY benchmarks/benchmark.py --device "$DEVICE" --spec "$SPEC" --prec "$prec" \
                    --batch-size "$batch" --classes "$classes" --steps "$STEPS" --eval-images "$EVAL_IMAGES" \
                    --eval-batch-size 32 --recompute off --row 2>/dev/null | tail -n 1) && [ -n "$row" ]; then
                rows+=("$row")
            else
                rows+=("MMRL	$SPEC	$prec	$batch	$classes	failed	-	-	-")
                failures+=("benchmark $prec/$batch/$classes")
            fi
        done
    done
done
peak=$([ "$DEVICE" = cuda ] && echo "peak GPU GB" || echo "peak RSS GB")
printf '\n%-6s %-8s %-6s %6s %8s %10s %12s %11s %12s\n' trainer spec prec batch classes "s/step" "train img/s" "eval img/s" "$peak"
for row in "${rows[@]}"; do
    IFS=$'\t' read -r t s p b c st ti ei pk <<< "$row"
    printf '%-6s %-8s %-6s %6s %8s %10s %12s %11s %12s\n' "$t" "$s" "$p" "$b" "$c" "$st" "$ti" "$ei" "$pk"
done

echo
for prec in fp32 amp; do
    $PY benchmarks/text_side.py --device "$DEVICE" --spec "$SPEC" --prec "$prec" --classes 1000 \
        --steps "$TEXT_STEPS" --recompute off 2>/dev/null || failures+=("text side $prec")
done

echo
# torchrun on this machine's devices (NCCL on GPUs, Gloo in the dry run): one process, and two where
# there are two GPUs (or in the dry run).
if [ "$DEVICE" = cuda ]; then
    WORLDS=$($PY -c "import torch; print('1 2' if torch.cuda.device_count() >= 2 else '1')")
    DIST_PREC=amp
else
    WORLDS="1 2"; DIST_PREC=fp32
fi
# shellcheck disable=SC2086  # WORLDS is a list of world sizes
$PY benchmarks/benchmark.py --distributed --device "$DEVICE" --spec "$SPEC" --prec "$DIST_PREC" \
    --world-sizes $WORLDS --class-counts 1000 --steps "$STEPS" --recompute off 2>/dev/null \
    || failures+=("torchrun")

echo
if [ ${#failures[@]} -eq 0 ]; then
    echo "device_check ($MODE): PASS (tests, ${#rows[@]} benchmark rows, text side, torchrun)"
else
    echo "device_check ($MODE): FAIL (${failures[*]})"
    exit 1
fi
