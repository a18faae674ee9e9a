"""A worker killed (SIGKILL) in the middle of a call: the caller gets an error naming the
worker well inside the RPC timeout, and so does every later call to it. Run as two plain
processes (not under mpirun, which would end the whole job when a rank dies):
`python rpc_dead_worker.py RANK` with MASTER_ADDR/MASTER_PORT set.
"""
import os
import signal
import sys
import time

import ember.distributed.rpc as rpc

TIMEOUT_S = 20.0
R = int(sys.argv[1])


def die():
    os.kill(os.getpid(), signal.SIGKILL)


rpc.init_rpc(f"worker{R}", rank=R, world_size=2,
             rpc_backend_options=rpc.RpcBackendOptions(rpc_timeout=TIMEOUT_S))
if R == 1:
    time.sleep(TIMEOUT_S * 3)         # killed by worker0's call long before this ends
    sys.exit(3)

for what, func in (("mid-call", die), ("after death", max)):
    start = time.monotonic()
    try:
        rpc.rpc_sync("worker1", func, args=() if func is die else (1, 2))
        raise AssertionError(f"{what}: the call to the dead worker returned")
    except RuntimeError as err:
        elapsed = time.monotonic() - start
        assert "worker1" in str(err), err
        assert elapsed < TIMEOUT_S / 2, (what, elapsed, err)
        print(f"dead worker {what}: {type(err).__name__} after {elapsed:.3f} s: {err}",
              flush=True)
rpc.shutdown(graceful=False)
print("dead worker OK", flush=True)
