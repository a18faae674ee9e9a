import sys, importlib, traceback
sys.path.insert(0, "/work/wt/compat/tests/compat"); sys.path.insert(0, ".")
import numpy as np
from porting import torch_as_ember
name = sys.argv[1]
ref = importlib.import_module(name)
with torch_as_ember(name) as p:
    port = p[name]
def conv(x):
    if hasattr(x, "detach"): return np.asarray(x.detach().cpu().float().numpy() if str(x.dtype).endswith("bfloat16") else x.detach().cpu().numpy())
    if isinstance(x, (list, tuple)): return [conv(v) for v in x]
    if isinstance(x, dict): return {k: conv(v) for k, v in x.items()}
    return x
def cmp(a, b, path=""):
    if isinstance(a, list):
        if len(a)!=len(b): print(path, "LEN", len(a), len(b)); return
        for i,(x,y) in enumerate(zip(a,b)): cmp(x,y,f"{path}[{i}]")
    elif isinstance(a, dict):
        if set(a)!=set(b): print(path,"KEYS",set(a)^set(b)); return
        for k in a: cmp(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, np.ndarray):
        b=np.asarray(b)
        if a.shape!=b.shape or a.dtype!=b.dtype: print(path,"SHAPE/DTYPE",a.shape,a.dtype,b.shape,b.dtype); return
        if not np.allclose(a.astype(np.float64) if a.dtype!=bool else a,b.astype(np.float64) if b.dtype!=bool else b,rtol=1e-4,atol=1e-5,equal_nan=True): print(path,"VALUES differ", np.abs(a.astype(float)-b.astype(float)).max())
    else:
        if a!=b and not (isinstance(a,float) and abs(a-b)<1e-4*max(1,abs(a))): print(path,"VAL",repr(a)[:200],"|",repr(b)[:200])
only = sys.argv[2:] 
for fn in [f for f in dir(ref) if f.startswith("case_")]:
    if only and fn not in only: continue
    try:
        a = conv(getattr(ref, fn)())
    except Exception as e:
        print(fn, "TORCH FAILED", e); continue
    try:
        b = conv(getattr(port, fn)())
    except Exception as e:
        print(fn, "EMBER FAILED:", type(e).__name__, str(e)[:400]); traceback.print_exc(limit=-3); continue
    print("--", fn); cmp(a, b)
