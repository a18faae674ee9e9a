#!/usr/bin/env bash
# ember's CUDA tests on a machine with an NVIDIA GPU, in one call (from anywhere):
#   bash tests/cuda/run_on_gpu.sh [extra pytest args for test_gpu.py, e.g. -k streams]
#   EMBER_GPU_PART=2 bash tests/cuda/run_on_gpu.sh     # one third of it (see in_part below)
# Needs python with numpy, pytest, torch (for the emulated tests' interpreter), triton,
# cuda-bindings, llvmlite; lark is not needed to import ember. If a wheel directory is
# given in EMBER_WHEELS, missing packages are installed from it without a network.
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
unset TRITON_INTERPRET
PY=${PYTHON:-python3}

if [ -n "${EMBER_WHEELS:-}" ]; then
    $PY -m pip install -q --no-index --find-links "$EMBER_WHEELS" \
        numpy pytest hypothesis llvmlite cuda-bindings 2>&1 | tail -3
    # the NCCL backend's tests skip (saying so) where these are missing
    $PY -m pip install -q --no-index --find-links "$EMBER_WHEELS" nccl4py nvidia-nccl-cu13 \
        2>&1 | tail -3
    # cuDNN convolutions (test_cudnn_conv_cuda.py skips, saying so, where they are missing)
    $PY -m pip install -q --no-index --find-links "$EMBER_WHEELS" nvidia-cudnn-frontend \
        nvidia-cudnn-cu13 2>&1 | tail -3
fi
$PY - <<'PY' || exit 1
import sys
import ember
print("python", sys.version.split()[0], "| ember", ember.__version__,
      "| lark imported:", "lark" in sys.modules)
if not ember.cuda.is_available():
    from ember.runtime.cuda import driver
    sys.exit(f"no usable CUDA GPU: {driver._state['init']}")
import triton
print("GPU:", ember.cuda.get_device_name(), "capability", ember.cuda.get_device_capability(),
      "| triton", triton.__version__)
PY

# Parallel where pytest-xdist is installed: the real-GPU files hold about 1450 tests whose
# time is mostly Triton compiles on the host CPU (one GPU serves all workers; on an H100
# machine with 16 cores, 8 workers had run 97% of them after 5.5 minutes). Tests are dealt
# out one by one (--dist load): a file's tests share nothing but the disk caches.
# EMBER_GPU_WORKERS=0 runs serially. pytest-timeout, where installed, bounds each test.
PAR=()
if [ "${EMBER_GPU_WORKERS:-8}" != 0 ] && $PY -c "import xdist" 2>/dev/null; then
    PAR=(-n "${EMBER_GPU_WORKERS:-8}" --dist load)
    # each test worker would otherwise fork a compile pool of every CPU: 2 each is plenty
    export EMBER_COMPILE_WORKERS="${EMBER_COMPILE_WORKERS:-2}"
fi
if $PY -c "import pytest_timeout" 2>/dev/null; then
    PAR+=(--timeout "${EMBER_TEST_TIMEOUT:-300}")
fi

status=0
# EMBER_GPU_PART=1|2|3 runs one third (a machine that limits one command to 10 minutes:
# part 1 the real-GPU and compiled-plan tests, 2 the training-step files, 3 the rest);
# unset runs all
in_part() { [ -z "${EMBER_GPU_PART:-}" ] || [ "$EMBER_GPU_PART" = "$1" ]; }
# real GPU tests: their own process (the emulated tests set TRITON_INTERPRET=1 at import)
if in_part 1; then
    $PY -m pytest -q -p no:cacheprovider -ra "${PAR[@]}" tests/cuda/test_gpu.py "$@" || status=1
fi
# compiled plans (backend='triton') on the GPU: cubins, CUDA-graph replay
if in_part 1; then
    TRITON_INTERPRET=0 $PY -m pytest -q -p no:cacheprovider -ra "${PAR[@]}" tests/cuda/test_compile_cuda.py || status=1
fi
# compiled training steps (compile_train_step(..., backend='triton')) on the GPU
if in_part 2; then
    TRITON_INTERPRET=0 $PY -m pytest -q -p no:cacheprovider -ra "${PAR[@]}" tests/cuda/test_compile_train_cuda.py \
        tests/cuda/test_train_step_replay_cuda.py tests/cuda/test_horizontal_cuda.py \
        tests/cuda/test_gemm_epilogue_outputs_cuda.py tests/cuda/test_split_k_train_cuda.py \
        tests/cuda/test_host_step_count_cuda.py tests/codegen/triton/test_triton_gemm_split_k.py \
        || status=1
fi
# training ops without host fallbacks (small_cnn / mlp / transformer steps, resnet18 and
# mobilenet steps) on the GPU
if in_part 2; then
    TRITON_INTERPRET=0 $PY -m pytest -q -p no:cacheprovider -ra "${PAR[@]}" tests/cuda/test_training_cuda.py \
        tests/cuda/test_conv_wgrad_cuda.py tests/cuda/test_bn_channels_last_cuda.py \
        tests/cuda/test_layout_glue_cuda.py tests/cuda/test_cudnn_conv_cuda.py \
        tests/codegen/triton/test_triton_split_reduce.py tests/codegen/triton/test_triton_reduce_levels.py \
        tests/cuda/test_train_step_kernels_cuda.py tests/cuda/test_eager_split_reduce_cuda.py \
        tests/codegen/triton/test_triton_qgemm.py tests/codegen/triton/test_triton_load_fill.py \
        tests/codegen/triton/test_triton_kernel_identity.py || status=1
fi
# image and audio ops and transforms without host fallbacks on the GPU
if in_part 3; then
    TRITON_INTERPRET=0 $PY -m pytest -q -p no:cacheprovider -ra "${PAR[@]}" tests/cuda/test_media_cuda.py \
        || status=1
fi
# profiler CUDA-event timing and triton_op user kernels on the GPU
if in_part 3; then
    TRITON_INTERPRET=0 $PY -m pytest -q -p no:cacheprovider -ra "${PAR[@]}" tests/cuda/test_gpu_tools.py \
        || status=1
fi
# deterministic mode on the GPU: the same training step twice, bit for bit
if in_part 3; then
    TRITON_INTERPRET=0 $PY -m pytest -q -p no:cacheprovider -ra "${PAR[@]}" tests/cuda/test_determinism_gpu.py \
        || status=1
fi
# mixed precision on the GPU: autocast('cuda') policy, float16/bfloat16 GEMM and conv
# (eager and compiled training steps), GradScaler; benchmarks/cuda.py's rows at small shapes
if in_part 3; then
    TRITON_INTERPRET=0 $PY -m pytest -q -p no:cacheprovider -ra "${PAR[@]}" tests/cuda/test_autocast_cuda.py \
        tests/cuda/test_bench_rows_cuda.py || status=1
fi
# CUDA artifacts (ember.aot target="cuda") against in-process backend='triton', bit for bit
if in_part 3; then
    TRITON_INTERPRET=0 $PY -m pytest -q -p no:cacheprovider -ra "${PAR[@]}" tests/cuda/test_aot_cuda_gpu.py \
        || status=1
fi
# dropout drawn on the device and compiled steps' device-side index checks (graph replay)
if in_part 3; then
    TRITON_INTERPRET=0 $PY -m pytest -q -p no:cacheprovider -ra "${PAR[@]}" tests/cuda/test_dropout_device_cuda.py \
        tests/cuda/test_index_check_device_cuda.py || status=1
fi
# ember.cuda.CUDAGraph / ember.cuda.graph: a captured training step replayed
if in_part 3; then
    TRITON_INTERPRET=0 $PY -m pytest -q -p no:cacheprovider -ra tests/cuda/test_cuda_graph_api.py \
        || status=1
fi
# multi-tensor optimizer / clip_grad_norm_ / GradScaler kernels and CPU<->CUDA copies
if in_part 3; then
    TRITON_INTERPRET=0 $PY -m pytest -q -p no:cacheprovider -ra tests/cuda/test_multi_tensor_optim.py \
        tests/cuda/test_cross_device_copy_cuda.py || status=1
fi
# the NCCL backend on one GPU: a 1-process group, every collective and DDP
# (bounded: a hung collective must not take the rest of the run with it)
if in_part 3; then
    TRITON_INTERPRET=0 timeout "${EMBER_NCCL_TIMEOUT:-150}" $PY -m pytest -q -p no:cacheprovider -ra \
        tests/cuda/test_nccl_gpu.py || { echo "test_nccl_gpu.py failed or timed out (rc $?)"; status=1; }
fi
# CPU-side tests of the same runtime (allocator policy, launch packing). The emulated
# tests are CI's (Triton 3.9's interpreter); the GPU machine's Triton 3.6 interpreter
# fails tl.dot under its numpy 2.5 ("only 0-dimensional arrays can be converted"), and the
# real-GPU tests above cover the same paths there.
if in_part 3; then
    $PY -m pytest -q -p no:cacheprovider -ra tests/cuda --ignore=tests/cuda/test_gpu.py \
        --ignore=tests/cuda/test_compile_cuda.py --ignore=tests/cuda/test_compile_train_cuda.py \
        --ignore=tests/cuda/test_emulated.py --ignore=tests/cuda/test_determinism_gpu.py \
        --ignore=tests/cuda/test_training_cuda.py --ignore=tests/cuda/test_gpu_tools.py \
        --ignore=tests/cuda/test_conv_wgrad_cuda.py --ignore=tests/cuda/test_bn_channels_last_cuda.py \
        --ignore=tests/cuda/test_media_cuda.py --ignore=tests/cuda/test_layout_glue_cuda.py \
        --ignore=tests/cuda/test_nccl_gpu.py --ignore=tests/cuda/test_nccl_emulated.py \
        --ignore=tests/cuda/test_autocast_cuda.py --ignore=tests/cuda/test_batch_compile.py \
        --ignore=tests/cuda/test_bench_rows_cuda.py \
        --ignore=tests/cuda/test_custom_op_emulated.py \
        --ignore=tests/cuda/test_triton_op_emulated.py --ignore=tests/cuda/test_aot_cuda_gpu.py \
        --ignore=tests/cuda/test_aot_cuda_emulated.py --ignore=tests/cuda/test_cuda_graph_api.py \
        --ignore=tests/cuda/test_aot_cuda_splits_emulated.py \
        --ignore=tests/cuda/test_aot_cuda_cudnn_emulated.py \
        --ignore=tests/cuda/test_dropout_device_cuda.py \
        --ignore=tests/cuda/test_index_check_device_cuda.py \
        --ignore=tests/cuda/test_multi_tensor_optim.py \
        --ignore=tests/cuda/test_cross_device_copy_cuda.py \
        --ignore=tests/cuda/test_train_step_kernels_cuda.py \
        --ignore=tests/cuda/test_eager_split_reduce_cuda.py \
        --ignore=tests/cuda/test_train_step_replay_cuda.py --ignore=tests/cuda/test_horizontal_cuda.py \
        --ignore=tests/cuda/test_gemm_epilogue_outputs_cuda.py \
        --ignore=tests/cuda/test_split_k_train_cuda.py \
        --ignore=tests/cuda/test_host_step_count_cuda.py || status=1
fi
exit $status
