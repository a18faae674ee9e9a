"""A kernel's keys are computed once and remembered (GeneratedKernel._remembered,
CompileJob.key): a batch asks each of them many times. The memo must never outlive a
change: a kernel whose launch arguments are replaced (multi_tensor's Adam retyping does
this) or whose source is replaced gets the keys a fresh kernel of that content has, and a
pickled kernel (handed to a compile worker, stored) carries no memo."""
import copy
import pickle

from ember.codegen.triton import device_compile as dc
from ember.codegen.triton.layout_copy import batched_transpose
from ember.ir import dtypes


def test_keys_follow_a_replaced_launch_and_source():
    half = batched_transpose(2, 5, 63, dtypes.float16)
    single = batched_transpose(2, 5, 63, dtypes.float32)
    before = (half.key(), half.body_key())
    assert before == (half.key(), half.body_key())           # remembered, the same
    half.launch.args = list(single.launch.args)             # replaced, as _retype does
    assert (half.key(), half.body_key()) == (single.key(), single.body_key())
    assert half.key() != before[0]
    edited = batched_transpose(2, 5, 63, dtypes.float32)
    edited.key()
    edited.source = edited.source.replace("def ", "def k_", 1)
    assert edited.key() == copy.deepcopy(edited).key() != single.key()


def test_a_pickled_kernel_carries_no_memo_and_computes_the_same_keys():
    kernel = batched_transpose(3, 4, 5, dtypes.bfloat16)
    keys = (kernel.key(), kernel.body_key())
    assert "_digests" in kernel.__dict__
    again = pickle.loads(pickle.dumps(kernel))
    assert "_digests" not in again.__dict__
    assert (again.key(), again.body_key()) == keys


def test_a_compile_job_key_is_computed_once_and_equals_a_fresh_job():
    kernel = batched_transpose(2, 5, 63, dtypes.float32)
    job = dc.CompileJob(kernel, (True, True), 90)
    key = job.key()
    assert job.key() is key
    assert dc.CompileJob(batched_transpose(2, 5, 63, dtypes.float32), (True, True), 90).key() \
        == key
    assert dc.CompileJob(kernel, (True, False), 90).key() != key
    assert pickle.loads(pickle.dumps(job)).key() == key
