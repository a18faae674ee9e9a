"""A generated kernel's identity (the in-process kernel cache's key, and the cubin dedupe's
body key) tells apart kernels whose source is the same but whose pointers' element types
differ: a layout copy's source leaves its element type to the pointers, and a float32 copy
launched with the float16 cubin wrote wrong values on an H100 (every element of a
channels-last float32 copy after a float16 copy of the same shape in one process)."""
from ember.codegen.triton.layout_copy import batched_transpose
from ember.ir import dtypes


def test_same_source_other_element_type_is_another_kernel():
    half = batched_transpose(2, 5, 63, dtypes.float16)
    single = batched_transpose(2, 5, 63, dtypes.float32)
    assert half.source == single.source            # the case the key must still tell apart
    assert half.key() != single.key()
    assert half.body_key() != single.body_key()


def test_same_kernel_same_identity():
    assert batched_transpose(2, 5, 63, dtypes.float32).key() == \
        batched_transpose(2, 5, 63, dtypes.float32).key()
    # bfloat16 and float16 are other kernels too, though both move 16-bit words
    assert batched_transpose(3, 4, 5, dtypes.bfloat16).key() != \
        batched_transpose(3, 4, 5, dtypes.float16).key()
