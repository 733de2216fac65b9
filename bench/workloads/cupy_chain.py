"""Correctness under spillover for a CuPy program (CuPy's memory pool): many arrays alive at
once, totalling 2-3x the VRAM limit, each read several times. Arrays are filled by a hash of
their index (no RNG library involved); results are exact integer checksums plus a float chain
(cuBLAS matrix-vector products) hashed bit for bit. The suite compares them with the same
program run without spillover."""

import time

import common

_FILL = r"""
unsigned long long z = (unsigned long long)i + salt * 0x9E3779B97F4A7C15ull;
z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
z ^= z >> 31;
y = (unsigned int)z;
"""


def main(spec):
    import cupy as cp
    import numpy as np

    n_arr, mib, rows, cols = common.array_shape(spec)
    fill = cp.ElementwiseKernel("uint64 salt", "uint32 y", _FILL, "spillover_fill")
    common.log(f"cupy {cp.__version__}; {n_arr} x {mib} MiB")

    passes = {}
    t = time.perf_counter()
    arrays = []
    for i in range(n_arr):
        a = cp.empty((rows, cols), dtype=cp.uint32)
        fill(cp.uint64(i + 1), a)
        arrays.append(a)
    cp.cuda.Device().synchronize()
    passes["create_s"] = time.perf_counter() - t

    t = time.perf_counter()
    sums = []
    for i, a in enumerate(arrays):
        x = a * cp.uint32(2654435761) + cp.uint32(i)
        x ^= x >> cp.uint32(13)
        sums.append(int(cp.sum(x, dtype=cp.uint64)))
        del x
    passes["mix_sum_s"] = time.perf_counter() - t

    t = time.perf_counter()
    acc = cp.zeros((rows, cols), dtype=cp.uint32)
    for a in arrays:
        acc *= cp.uint32(31)
        acc += a
    chain_sum = int(cp.sum(acc, dtype=cp.uint64))
    del acc
    passes["chain_s"] = time.perf_counter() - t

    t = time.perf_counter()
    xv = cp.ones((cols,), dtype=cp.float32)
    for _ in range(2):
        for a in arrays:
            w = (a >> cp.uint32(9)).astype(cp.float32) * cp.float32(2.0**-23) - cp.float32(0.5)
            y = w @ xv
            xv = cp.tanh(y.reshape(-1, cols).sum(axis=0) * cp.float32(0.05))
            del w, y
    xf = cp.asnumpy(xv)
    passes["float_chain_s"] = time.perf_counter() - t

    pool = cp.get_default_memory_pool()
    free, total = cp.cuda.runtime.memGetInfo()
    return {
        "working_set_bytes": n_arr * rows * cols * 4,
        "arrays": n_arr,
        "checksums": {
            "mix_sums_sha": common.sha16(np.asarray(sums, dtype=np.uint64).tobytes()),
            "chain_sum": str(chain_sum),  # may exceed 2^53: JSON readers in JS would round it
            "float_chain_sha": common.sha16(xf.tobytes()),
        },
        "passes_s": {k: round(v, 3) for k, v in passes.items()},
        "memory_stats": {"pool_used_bytes": int(pool.used_bytes()), "pool_total_bytes": int(pool.total_bytes()),
                         "reported_free_bytes": int(free), "reported_total_bytes": int(total)},
        "versions": {"cupy": cp.__version__},
    }


if __name__ == "__main__":
    common.run_main(main)
