"""ember.distributed's stores against torch.distributed's: the same operations in the same
order on a store of each kind, results and exception types compared.

HashStore, FileStore (in tmp_path, also shared with torch's FileStore), PrefixStore,
TCPStore on port 0 (the master, a client, clients in threads and in 2 subprocesses).
Store timeouts are 0.2 s, so every timed-out wait costs at most that.
"""
from __future__ import annotations

import datetime
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

import ember.distributed as edist

tdist = pytest.importorskip("torch.distributed")

T = datetime.timedelta
SHORT = T(seconds=0.2)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# One sequence for every store kind: (method, *args). "timeout" reads the property.
BASIC = [
    ("num_keys",), ("timeout",),
    ("set", "a", "x"), ("set", "b", b"\x00\xff"), ("set", "c", bytearray(b"ab")),
    ("set", "bad", 3), ("set", "bad", ["x"]), ("set", "", "empty key"), ("set", "ü", "é"),
    ("get", "a"), ("get", "b"), ("get", "c"), ("get", ""), ("get", "ü"),
    ("set_timeout", SHORT), ("timeout",),
    ("get", "missing"),
    ("add", "n", 3), ("get", "n"), ("add", "n", -5), ("add", "n", 0), ("get", "n"),
    ("set", "num", "7"), ("add", "num", 1), ("set", "num", " 7x"), ("add", "num", 1),
    ("add", "big", 2 ** 62), ("add", "big", 2 ** 62), ("get", "big"),
    ("add", "huge", 2 ** 63), ("add", "f", 1.5),
    ("compare_set", "m1", "", "v"), ("get", "m1"),
    ("compare_set", "m2", "e", "v"), ("check", ["m2"]),
    ("compare_set", "a", "x", "y"), ("compare_set", "a", "x", "z"),
    ("compare_set", "a", "", "z"), ("compare_set", "b", b"\x00\xff", b"q"), ("get", "a"),
    ("wait", ["a", "b"]), ("wait", []), ("wait", ["a", "missing"]),
    ("wait", ["missing"], T(seconds=0.05)), ("wait", "a"),
    ("check", ["a", "b"]), ("check", ["a", "missing"]), ("check", []), ("check", "a"),
    ("num_keys",),
    ("delete_key", "a"), ("delete_key", "a"), ("num_keys",), ("check", ["a"]),
    ("multi_set", ["k1", "k2"], ["v1", b"v2"]), ("multi_get", ["k1", "k2"]),
    ("multi_get", []), ("multi_get", ["k1", "missing"]),
    ("append", "ap", "po"), ("append", "ap", b"tato"), ("get", "ap"),
    ("append", "n", "1"), ("get", "n"), ("add", "n", 1),
    ("has_extended_api",),
    ("barrier", "bar", 1), ("barrier", "bar", 1), ("barrier", "bar2", 2, T(seconds=0.05)),
    ("num_keys",),
]
QUEUES = [
    ("queue_len", "q"), ("queue_push", "q", "one"), ("queue_push", "q", b"two"),
    ("queue_len", "q"), ("check", ["q"]), ("wait", ["q"]), ("num_keys",),
    ("queue_pop", "q"), ("queue_pop", "q", False), ("queue_pop", "q", False),
    ("queue_pop", "q"), ("queue_len", "q"), ("check", ["q"]),
]
NOT_INTEGER = [("set", "word", "x"), ("add", "word", 1), ("set", "blank", ""),
               ("add", "blank", 2)]
LIST_KEYS = [("list_keys",)]


def run_ops(store, ops) -> list:
    """Each operation's result, or the name of the exception it raised."""
    out = []
    for name, *args in ops:
        try:
            value = store.timeout if name == "timeout" else getattr(store, name)(*args)
            out.append((name, sorted(value) if name == "list_keys" else value))
        except Exception as err:            # noqa: BLE001 - the exception is the result
            out.append((name, "raised " + type(err).__name__))
    return out


def assert_same(ops, ours, theirs):
    for op, mine, torchs in zip(ops, run_ops(ours, ops), run_ops(theirs, ops)):
        assert mine == torchs, f"{op}: ember gave {mine[1]!r}, torch {torchs[1]!r}"


def test_hash_store_matches_torch():
    ops = BASIC + QUEUES + NOT_INTEGER + LIST_KEYS + [("multi_get", ["k1"])]
    assert_same(ops, edist.HashStore(), tdist.HashStore())


def test_file_store_matches_torch(tmp_path):
    # torch's FileStore lists its internal counters under mangled names: list_keys apart.
    # Its timed-out waits take a whole second whatever the timeout: two of them suffice.
    slow = [("wait", ["missing"], T(seconds=0.05)), ("multi_get", ["k1", "missing"]),
            ("wait", ["q"]), ("barrier", "bar2", 2, T(seconds=0.05))]
    ops = [op for op in BASIC + QUEUES + NOT_INTEGER if op not in slow]
    ours = edist.FileStore(str(tmp_path / "ember"), 1)
    theirs = tdist.FileStore(str(tmp_path / "torch"), 1)
    assert_same(ops, ours, theirs)
    internal = {"efcount/", "leanup/"}
    assert sorted(ours.list_keys()) == sorted(set(theirs.list_keys()) - internal)
    assert ours.path == str(tmp_path / "ember")


@pytest.mark.parametrize("inner", ["hash", "tcp"])
def test_prefix_store_matches_torch(inner):
    def make(d):
        under = d.HashStore() if inner == "hash" else d.TCPStore("127.0.0.1", 0, 1, True, SHORT)
        return d.PrefixStore("pre", d.PrefixStore("fix", under)), under
    (ours, our_under), (theirs, their_under) = make(edist), make(tdist)
    ops = BASIC + QUEUES + LIST_KEYS
    assert_same(ops, ours, theirs)
    assert sorted(our_under.list_keys()) == sorted(their_under.list_keys())
    assert ours._underlying_non_prefix_store is our_under
    assert type(ours.underlying_store).__name__ == "PrefixStore"
    assert type(ours.clone()).__name__ == type(theirs.clone()).__name__ == "PrefixStore"
    for d in (edist, tdist):
        with pytest.raises(ValueError):
            d.PrefixStore("p", None)


def test_tcp_store_master_and_client_match_torch():
    def make(d):
        master = d.TCPStore("127.0.0.1", 0, 1, True, T(seconds=5))
        return master, d.TCPStore("127.0.0.1", master.port, None, False, T(seconds=5))
    (our_master, ours), (their_master, theirs) = make(edist), make(tdist)
    ops = BASIC + QUEUES + LIST_KEYS + [("multi_set", ["k1", "k2"], ["v1"])]
    assert_same(ops, ours, theirs)                              # through a client
    assert_same([("num_keys",), ("get", "k1"), ("set_timeout", SHORT)] + BASIC,
                our_master, their_master)                       # on the master itself
    for store in (ours, our_master):
        assert store.host == "127.0.0.1" and store.port == our_master.port > 0
        assert store.libuvBackend is True
    assert ours.clone().get("k1") == b"v1" and ours.clone().timeout == SHORT


def test_tcp_store_refuses_non_integers_and_stays_usable():
    # torch's server drops the client on add over a non-integer (its later calls fail
    # with DistNetworkError); ember refuses the add as HashStore does and carries on
    master = edist.TCPStore("127.0.0.1", 0, None, True, SHORT)
    client = edist.TCPStore("127.0.0.1", master.port, None, False, SHORT)
    assert run_ops(client, NOT_INTEGER) == run_ops(edist.HashStore(), NOT_INTEGER)
    assert client.get("blank") == b"2"


def test_tcp_store_blocking_calls_wake_from_other_threads():
    # ember's store only: torch's TCPStore ran this same sequence to the expected values
    # when written, but its barrier once timed out (10 s) in a full-suite run at load ~8,
    # and a flaky oracle proves nothing
    d = edist
    master = d.TCPStore("127.0.0.1", 0, None, True, T(seconds=10))
    clients = [d.TCPStore("127.0.0.1", master.port, None, False, T(seconds=10))
               for _ in range(3)]
    got, cpu = {}, {}

    def waiter(i, store):
        start = time.thread_time()
        got[i] = (store.get("late"), store.queue_pop("jobs"))
        store.barrier("done", 4)
        cpu[i] = time.thread_time() - start
    threads = [threading.Thread(target=waiter, args=(i, c)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    master.set("late", "now")
    for job in ("j0", "j1", "j2"):
        master.queue_push("jobs", job)
    master.barrier("done", 4)
    for t in threads:
        t.join(20)
    assert {v[0] for v in got.values()} == {b"now"}
    assert sorted(v[1] for v in got.values()) == [b"j0", b"j1", b"j2"]
    # the waiting threads slept (no spinning): far less CPU than the 0.3 s they waited
    assert max(cpu.values()) < 0.2, cpu


def test_tcp_store_world_size_and_connection_errors_match_torch():
    def outcomes(d):
        out = []
        master = d.TCPStore("127.0.0.1", 0, 2, True, SHORT, wait_for_workers=False)
        out += run_ops(master, [("num_keys",)])
        client = d.TCPStore("127.0.0.1", master.port, 2, False, SHORT)
        out += run_ops(client, [("num_keys",)])                 # the joined-users counter
        for make in (lambda: d.TCPStore("127.0.0.1", 0, 2, True, SHORT),   # nobody joins
                     lambda: d.TCPStore("127.0.0.1", master.port, None, True, SHORT),
                     lambda: d.TCPStore("127.0.0.1", -1, None, True, SHORT)):
            try:
                make()
                out.append("made")
            except Exception as err:        # noqa: BLE001
                out.append(type(err).__name__)
        blocked = d.TCPStore("127.0.0.1", master.port, None, False, T(seconds=30))
        waiter = threading.Thread(target=lambda: out.extend(run_ops(blocked, [("get", "x")])))
        waiter.start()
        time.sleep(0.2)
        del master                          # the master goes while a get waits in it
        waiter.join(10)
        out += run_ops(client, [("get", "x")])
        return out
    assert outcomes(edist) == outcomes(tdist)


def test_tcp_store_wait_for_workers_and_multi_tenant():
    port = _free_port()
    made = {}
    master = threading.Thread(target=lambda: made.setdefault(
        "m", edist.TCPStore("127.0.0.1", port, 3, True, T(seconds=10))))
    master.start()
    time.sleep(0.2)
    assert master.is_alive()                                    # waits for 2 clients
    clients = [edist.TCPStore("127.0.0.1", port, 3, False, T(seconds=10)) for _ in range(2)]
    master.join(10)
    assert made["m"].port == port and made["m"].num_keys() == 1
    one = edist.TCPStore("127.0.0.1", 0, None, True, SHORT, multi_tenant=True)
    two = edist.TCPStore("127.0.0.1", one.port, None, True, SHORT, multi_tenant=True)
    one.set("shared", "yes")
    assert two.get("shared") == b"yes" and two._owner is one._owner       # one server
    clients[0].set("alive", "1")
    assert made["m"].get("alive") == b"1"


@pytest.mark.parametrize("which", ["ember", "torch"])
def test_tcp_store_with_clients_in_two_processes(which):
    d = edist if which == "ember" else tdist
    master = d.TCPStore("127.0.0.1", 0, 3, True, T(seconds=20), wait_for_workers=False)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    script = os.path.join(ROOT, "tests", "distributed", "scripts", "store_client.py")
    procs = [subprocess.Popen([sys.executable, script, which, str(master.port), str(rank)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
             for rank in (1, 2)]
    master.set("from0", "hello from 0")
    master.barrier("end", 3)
    jobs = sorted([master.queue_pop("jobs"), master.queue_pop("jobs")])
    master.set("go", "go")
    seen = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err[-2000:]
        seen.append(json.loads(out))
    assert jobs == [b"done1", b"done2"]
    assert sorted(s["total"] for s in seen) in ([1, 3], [2, 3])
    assert [s["other"] for s in seen] == ["hello from 2", "hello from 1"]
    assert master.get("total") == b"3" and sorted(master.get("log").decode()) == ["1", "2"]
    # total, from0-2, log, end, go and the count of users that joined with a world_size
    expected = {"go": "go", "master": "hello from 0", "num_keys": 8}
    assert all({k: s[k] for k in expected} == expected for s in seen)
    assert master.num_keys() == 8


def test_file_store_is_shared_with_torch_and_removed_by_its_last_user(tmp_path):
    path = str(tmp_path / "shared")
    ours, theirs = edist.FileStore(path, 2), tdist.FileStore(path, 2)
    ours.set("from_ember", "e")
    theirs.set("from_torch", b"t")
    assert theirs.get("from_ember") == b"e" and ours.get("from_torch") == b"t"
    assert ours.add("count", 2) == 2 and theirs.add("count", 3) == 5
    assert ours.num_keys() == theirs.num_keys() == 4        # 3 keys and the user count
    assert theirs.delete_key("from_ember") and not ours.check(["from_ember"])
    del ours
    assert os.path.exists(path)                             # torch's store still uses it
    del theirs
    assert not os.path.exists(path)


def test_file_store_lifetime_matches_torch(tmp_path):
    def lifetime(d, path):
        out = []
        first = d.FileStore(path, 2)
        second = first.clone()
        out.append((first.num_keys(), second.timeout))
        del second
        out.append((os.path.exists(path), first.num_keys()))  # a cleanup counter now
        del first
        out.append(os.path.exists(path))                     # both users gone: removed
        lone = d.FileStore(path, -1)
        del lone
        out.append(os.path.exists(path))                     # world_size -1: kept
        return out
    assert lifetime(edist, str(tmp_path / "e")) == lifetime(tdist, str(tmp_path / "t"))


def test_file_store_across_threads_wakes_a_blocked_get(tmp_path):
    path = str(tmp_path / "f")
    reader, writer = edist.FileStore(path, 2), edist.FileStore(path, 2)
    got = []
    t = threading.Thread(target=lambda: got.append(reader.get("late")))
    t.start()
    time.sleep(0.1)
    writer.set("late", "v")
    t.join(10)
    assert got == [b"v"]


def test_python_subclass_of_store_works_under_prefix_store():
    class DictStore(edist.Store):
        def __init__(self):
            super().__init__()
            self.data = {}

        def set(self, key, value, /):
            self.data[key] = value.encode() if isinstance(value, str) else value

        def get(self, key, /):
            return self.data[key]

    base = DictStore()
    view = edist.PrefixStore("p", base)
    view.set("k", "v")
    assert view.get("k") == b"v" and base.data == {"p/k": b"v"}
    assert base.timeout == tdist.Store().timeout == T(seconds=300)
    for op, args in [("add", ("k", 1)), ("queue_push", ("q", "v")), ("list_keys", ())]:
        with pytest.raises(NotImplementedError):
            getattr(base, op)(*args)
    assert base.has_extended_api() is tdist.Store().has_extended_api() is False


def test_errors_are_torchs_kinds():
    assert issubclass(edist.DistStoreError, edist.DistError)
    assert issubclass(edist.DistStoreError, RuntimeError)
    assert issubclass(edist.QueueEmptyError, edist.DistStoreError)


def test_nccl_unique_id_goes_through_a_store():
    from ember.distributed.nccl_engine import exchange_unique_id
    store, got = edist.HashStore(), {}

    def rank(r):
        got[r] = exchange_unique_id(r, 2, lambda: b"id-of-rank-0", store=store)
    threads = [threading.Thread(target=rank, args=(r,)) for r in (1, 0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert got == {0: b"id-of-rank-0", 1: b"id-of-rank-0"}


INIT_WITH_STORE = """
import ember.distributed as dist
from ember.distributed import c10d
store = dist.HashStore()
for kwargs in ({}, {"rank": 0}, {"world_size": 1}):
    try:
        dist.init_process_group("gloo", store=store, **kwargs)
    except ValueError as err:
        print("refused", "rank" in str(err) or "world_size" in str(err))
try:
    dist.init_process_group("gloo", store=store, rank=2, world_size=2)
except ValueError as err:
    print("mismatch", "rank 2 is outside [0, 2)" in str(err))
dist.init_process_group("gloo", store=store, rank=0, world_size=1)
c10d._get_default_store().set("k", "v")
print(dist.get_rank(), dist.get_world_size(), store.list_keys())
dist.destroy_process_group()
"""


def test_init_process_group_takes_a_store():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", INIT_WITH_STORE], env=env, text=True,
                         capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[:5] == ["refused True"] * 3 + ["mismatch True",
                                                                  "0 1 ['0//k']"]


def _free_port() -> int:
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_rendezvous_hands_out_stores_like_torch(monkeypatch, tmp_path):
    def outcomes(d, tag):
        def attempt(make):
            try:
                store, rank, world_size = next(make())
                return type(store).__name__, rank, world_size, store.timeout, store.num_keys()
            except Exception as err:        # noqa: BLE001
                return type(err).__name__
        for name in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE"):
            monkeypatch.delenv(name, raising=False)
        out = [attempt(lambda: d.rendezvous("env://"))]
        monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
        monkeypatch.setenv("MASTER_PORT", str(_free_port()))
        monkeypatch.setenv("RANK", "0")
        monkeypatch.setenv("WORLD_SIZE", "1")
        gen = d.rendezvous("env://", timeout=T(seconds=3))
        out += [attempt(lambda: gen), attempt(lambda: gen)]      # no second rendezvous
        file_url = f"file://{tmp_path}/{tag}"
        for make in (lambda: d.rendezvous("tcp://127.0.0.1:0", rank=0, world_size=1),
                     lambda: d.rendezvous("tcp://127.0.0.1:0?rank=0"),
                     lambda: d.rendezvous("tcp://127.0.0.1?rank=0&world_size=1"),
                     lambda: d.rendezvous(file_url + "?rank=0&world_size=1"),
                     lambda: d.rendezvous(file_url + "b"),
                     lambda: d.rendezvous("foo://x"),
                     lambda: d.rendezvous(5),
                     lambda: d.rendezvous("tcp://127.0.0.1:0", rank="0", world_size=1)):
            out.append(attempt(make))
        return out
    assert outcomes(edist, "e") == outcomes(tdist, "t")
    with pytest.raises(RuntimeError):
        edist.register_rendezvous_handler("env", None)


FILE_PEER = """
import sys, ember.distributed as dist
store = dist.FileStore(sys.argv[1], 2)
store.add("arrived", 1)
print(store.get("from_parent").decode(), flush=True)       # waits for the parent
store.set("from_child", "child")
"""


def test_file_store_between_processes_and_removed_at_exit(tmp_path):
    path = str(tmp_path / "two_processes")
    store = edist.FileStore(path, 2)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    child = subprocess.Popen([sys.executable, "-c", FILE_PEER, path], env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    store.set_timeout(T(seconds=60))
    store.wait(["arrived"])
    store.set("from_parent", "parent")
    assert store.get("from_child") == b"child"
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0 and out.strip() == "parent", err[-2000:]
    assert store.num_keys() == 5          # 3 keys, the users' count and the leavers' count
    assert os.path.exists(path)           # the child left; this store still uses it
    del store
    assert not os.path.exists(path)
