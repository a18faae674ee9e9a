"""A TCPStore client process for tests/distributed/test_stores.py.

argv: "torch" or "ember", the master's port, this client's rank (1 or 2). Joins a
3-user store, exchanges values with the other users, and prints what it saw as JSON.
"""
import datetime
import json
import sys

which, port, rank = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if which == "torch":
    import torch.distributed as dist
else:
    import ember.distributed as dist

store = dist.TCPStore("127.0.0.1", port, 3, False, datetime.timedelta(seconds=20))
seen = {"total": store.add("total", rank)}
store.set(f"from{rank}", f"hello from {rank}")
store.append("log", str(rank))
seen["other"] = store.get(f"from{3 - rank}").decode()        # blocks until the peer sets it
seen["master"] = store.get("from0").decode()
store.queue_push("jobs", f"done{rank}")
store.barrier("end", 3)                                       # the master's barrier too
seen["go"] = store.get("go").decode()
seen["num_keys"] = store.num_keys()
print(json.dumps(seen, sort_keys=True))
