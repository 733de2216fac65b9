"""Correctness under spillover for a JAX program (XLA's own allocator): many arrays that are all
alive at once, totalling 2-3x the VRAM limit, each read several times. Results are exact
integer checksums (uint32 arithmetic, so independent of reduction order) plus a float chain
hashed bit for bit (the suite runs every JAX process with --xla_gpu_deterministic_ops). The
suite compares them with the same program run without spillover.

Allocator settings come from the environment the suite sets: XLA_PYTHON_CLIENT_PREALLOCATE=false
(XLA grows its pool on demand), or the default (XLA takes XLA_PYTHON_CLIENT_MEM_FRACTION, 0.75 by
default, of the memory the driver reports as free, at start-up, in one allocation)."""

import time

import common


def main(spec):
    import jax
    import jax.numpy as jnp
    import numpy as np

    n_arr, mib, rows, cols = common.array_shape(spec)
    seed = int(spec.get("seed", 0))
    dev = jax.devices()[0]
    common.log(f"jax {jax.__version__} on {dev}; {n_arr} x {mib} MiB")

    @jax.jit
    def make(i):
        return jax.random.bits(jax.random.fold_in(jax.random.key(seed), i), (rows, cols), jnp.uint32)

    @jax.jit
    def mix_sum(a, i):
        x = a * jnp.uint32(2654435761) + i.astype(jnp.uint32)
        x = x ^ (x >> 13)
        return jnp.sum(x, dtype=jnp.uint32)

    @jax.jit
    def chain(acc, a):
        return acc * jnp.uint32(31) + a

    @jax.jit
    def fstep(x, a):
        w = (a >> 9).astype(jnp.float32) * jnp.float32(2.0**-23) - jnp.float32(0.5)
        y = w @ x
        return jnp.tanh(y.reshape(-1, cols).sum(0) * jnp.float32(0.05))

    passes = {}
    t = time.perf_counter()
    arrays = [make(jnp.uint32(i)) for i in range(n_arr)]
    jax.block_until_ready(arrays)
    passes["create_s"] = time.perf_counter() - t

    t = time.perf_counter()
    sums = [int(mix_sum(a, jnp.uint32(i))) for i, a in enumerate(arrays)]
    passes["mix_sum_s"] = time.perf_counter() - t

    t = time.perf_counter()
    acc = jnp.zeros((rows, cols), jnp.uint32)
    for a in arrays:
        acc = chain(acc, a)
    chain_sum = int(jnp.sum(acc, dtype=jnp.uint32))
    passes["chain_s"] = time.perf_counter() - t

    t = time.perf_counter()
    x = jnp.ones((cols,), jnp.float32)
    for _ in range(2):
        for a in arrays:
            x = fstep(x, a)
    xf = np.asarray(jax.device_get(x))
    passes["float_chain_s"] = time.perf_counter() - t

    stats = {}
    try:
        ms = dev.memory_stats() or {}
        stats = {k: int(v) for k, v in ms.items() if isinstance(v, (int, float))}
    except Exception as e:  # some backends have no memory_stats
        stats = {"error": str(e)}
    return {
        "working_set_bytes": n_arr * rows * cols * 4,
        "arrays": n_arr,
        "checksums": {
            "mix_sums_sha": common.sha16(np.asarray(sums, dtype=np.uint64).tobytes()),
            "chain_sum": str(chain_sum),  # may exceed 2^53: JSON readers in JS would round it
            "float_chain_sha": common.sha16(xf.tobytes()),
        },
        "passes_s": {k: round(v, 3) for k, v in passes.items()},
        "memory_stats": stats,
        "versions": {"jax": jax.__version__},
    }


if __name__ == "__main__":
    common.run_main(main)
