"""The corpus's Triton kernel (bench/placement/corpus.py --case triton), in a module of its own
because Triton resolves the names a kernel uses (tl) in the module's globals."""

import triton
import triton.language as tl


@triton.jit
def fma_kernel(a_ptr, b_ptr, o_ptr, n, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    a = tl.load(a_ptr + offs, mask=m)
    b = tl.load(b_ptr + offs, mask=m)
    tl.store(o_ptr + offs, a * 1.5 + b * b - 0.25, mask=m)
