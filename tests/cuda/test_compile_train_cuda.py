"""Compiled training steps on CUDA (`ember.compile_train_step(..., backend="triton")`)
equal eager CPU training steps; and the CUDA runtime's teardown is quiet at exit.

Without a GPU (CI) the steps run under tests/cuda/emulation.py (see
test_compile_cuda.py's `device` fixture): 'cuda:0' lives in host memory and each plan
kernel runs under Triton's interpreter. Tests marked `cuda` run on a real GPU
(tests/cuda/run_on_gpu.sh)."""
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_cubin_kernel_unloads_while_running_and_is_silent_at_exit():
    """CubinKernel.__del__ unloads its module while the process runs, and does nothing
    (no 'NoneType has no attribute' noise) while the interpreter tears down."""
    code = textwrap.dedent("""
        from ember.runtime.cuda import module
        unloaded = []
        def make():
            k = module.CubinKernel.__new__(module.CubinKernel)
            k._module, k._unload = "mod", unloaded.append
            return k
        k = make()
        del k
        assert unloaded == ["mod"], unloaded
        module.kept = make()          # still referenced by a module global at exit
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    assert done.stderr == ""
