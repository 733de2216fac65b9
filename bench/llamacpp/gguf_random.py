"""Writes a random-weight GGUF (v3) that unmodified llama.cpp loads: a dense Llama-3-8B-shaped
model or a Qwen3-30B-A3B-shaped MoE, weights in Q8_0 (blocks of 32: an fp16 scale, then 32 int8),
norms in F32 (ones), the MoE router in F32. Speed does not depend on the weights' values, so
random weights measure what real ones would; the same file gives the same tokens in every run.

Fast: one pool of random Q8_0 blocks (64 MiB) is built once and written, from a different block
offset, into every tensor; the file is written with large sequential writes. --header-only writes
the header and makes the rest of the file sparse (for `spillover plan`, which reads headers only).

The tokenizer is a SentencePiece-style ("llama") vocabulary llama.cpp can tokenize and print:
<unk> <s> </s>, the 256 byte tokens <0x00>..<0xFF>, printable ASCII, then "[id]" pieces, so a
greedy run's printed text names its token ids.

Format: ggml/include/gguf.h (magic "GGUF", version 3, alignment 32); tensor names and hyper-
parameter keys: src/llama-arch.cpp, src/models/llama.cpp, src/models/qwen3moe.cpp of the
llama.cpp release node-llama-cpp 3.22.1 bundles.

  python3 bench/llamacpp/gguf_random.py dense-8b OUT.gguf [--header-only]
  python3 bench/llamacpp/gguf_random.py moe-30b-a3b OUT.gguf [--header-only]"""

import argparse
import os
import struct
import sys
import time

import numpy as np

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
ALIGN = 32
T_U32, T_I32, T_F32, T_BOOL, T_STRING, T_ARRAY = 4, 5, 6, 7, 8, 9
GGML_F32, GGML_Q8_0 = 0, 8
Q8_BLOCK, Q8_BYTES = 32, 34

MODELS = {
    # Llama-3-8B: 32 layers, hidden 4096, FFN 14336, 32 heads, 8 KV heads, vocab 128256
    "dense-8b": {"arch": "llama", "hidden": 4096, "layers": 32, "ffn": 14336, "heads": 32,
                 "kv_heads": 8, "head_dim": 128, "vocab": 128256, "rope_base": 500000.0,
                 "eps": 1e-5, "ctx": 8192},
    # Qwen3-30B-A3B: 48 layers, hidden 2048, 32 heads of 128, 4 KV heads, 128 experts of 768,
    # 8 used per token, vocab 151936
    "moe-30b-a3b": {"arch": "qwen3moe", "hidden": 2048, "layers": 48, "ffn": 6144, "heads": 32,
                    "kv_heads": 4, "head_dim": 128, "vocab": 151936, "rope_base": 1000000.0,
                    "eps": 1e-6, "ctx": 40960, "experts": 128, "experts_used": 8,
                    "expert_ffn": 768},
    # the same two architectures at a few MB, for checking the files on a CPU build
    "tiny-dense": {"arch": "llama", "hidden": 256, "layers": 2, "ffn": 512, "heads": 4,
                   "kv_heads": 2, "head_dim": 64, "vocab": 1024, "rope_base": 500000.0,
                   "eps": 1e-5, "ctx": 2048},
    "tiny-moe": {"arch": "qwen3moe", "hidden": 256, "layers": 2, "ffn": 512, "heads": 4,
                 "kv_heads": 2, "head_dim": 128, "vocab": 1024, "rope_base": 1000000.0,
                 "eps": 1e-6, "ctx": 2048, "experts": 8, "experts_used": 2, "expert_ffn": 128},
}


def tensors(m):
    """(name, dims with ne[0] first, ggml type) in the order llama.cpp's converter writes them."""
    h, v, hd = m["hidden"], m["vocab"], m["head_dim"]
    q, kv = m["heads"] * hd, m["kv_heads"] * hd
    out = [("token_embd.weight", [h, v], GGML_Q8_0)]
    for i in range(m["layers"]):
        b = f"blk.{i}."
        out += [(b + "attn_norm.weight", [h], GGML_F32),
                (b + "attn_q.weight", [h, q], GGML_Q8_0),
                (b + "attn_k.weight", [h, kv], GGML_Q8_0),
                (b + "attn_v.weight", [h, kv], GGML_Q8_0),
                (b + "attn_output.weight", [q, h], GGML_Q8_0),
                (b + "ffn_norm.weight", [h], GGML_F32)]
        if m["arch"] == "qwen3moe":
            e, f = m["experts"], m["expert_ffn"]
            out += [(b + "attn_q_norm.weight", [hd], GGML_F32),
                    (b + "attn_k_norm.weight", [hd], GGML_F32),
                    (b + "ffn_gate_inp.weight", [h, e], GGML_F32),
                    (b + "ffn_gate_exps.weight", [h, f, e], GGML_Q8_0),
                    (b + "ffn_down_exps.weight", [f, h, e], GGML_Q8_0),
                    (b + "ffn_up_exps.weight", [h, f, e], GGML_Q8_0)]
        else:
            f = m["ffn"]
            out += [(b + "ffn_gate.weight", [h, f], GGML_Q8_0),
                    (b + "ffn_down.weight", [f, h], GGML_Q8_0),
                    (b + "ffn_up.weight", [h, f], GGML_Q8_0)]
    out += [("output_norm.weight", [h], GGML_F32), ("output.weight", [h, v], GGML_Q8_0)]
    return out


def nbytes(dims, t):
    n = 1
    for d in dims:
        n *= d
    if t == GGML_F32:
        return 4 * n
    assert dims[0] % Q8_BLOCK == 0, dims
    return n // Q8_BLOCK * Q8_BYTES


def s_str(x):
    b = x.encode()
    return struct.pack("<Q", len(b)) + b


def kv(key, t, val):
    out = s_str(key) + struct.pack("<I", t)
    if t == T_U32:
        return out + struct.pack("<I", val)
    if t == T_F32:
        return out + struct.pack("<f", val)
    if t == T_BOOL:
        return out + struct.pack("<?", val)
    if t == T_STRING:
        return out + s_str(val)
    raise ValueError(t)


def kv_array(key, elem, vals):
    out = s_str(key) + struct.pack("<IIQ", T_ARRAY, elem, len(vals))
    if elem == T_STRING:
        return out + b"".join(s_str(v) for v in vals)
    if elem == T_F32:
        return out + np.asarray(vals, dtype="<f4").tobytes()
    if elem == T_I32:
        return out + np.asarray(vals, dtype="<i4").tobytes()
    raise ValueError(elem)


def vocab(n):
    toks = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [2, 3, 3] + [6] * 256  # UNKNOWN, CONTROL, CONTROL, BYTE...
    toks += ["\u2581"] + [chr(c) for c in range(33, 127)]  # the SentencePiece space, printable ASCII
    types += [1] * 95
    toks += [f"[{i}]" for i in range(len(toks), n)]
    types += [1] * (n - len(types))
    return toks, types


def header(name, m):
    a = m["arch"]
    items = [kv("general.architecture", T_STRING, a),
             kv("general.name", T_STRING, f"spillover-random-{name}"),
             kv("general.alignment", T_U32, ALIGN),
             kv("general.file_type", T_U32, 7),  # LLAMA_FTYPE_MOSTLY_Q8_0
             kv(f"{a}.context_length", T_U32, m["ctx"]),
             kv(f"{a}.embedding_length", T_U32, m["hidden"]),
             kv(f"{a}.block_count", T_U32, m["layers"]),
             kv(f"{a}.feed_forward_length", T_U32, m["ffn"]),
             kv(f"{a}.attention.head_count", T_U32, m["heads"]),
             kv(f"{a}.attention.head_count_kv", T_U32, m["kv_heads"]),
             kv(f"{a}.attention.key_length", T_U32, m["head_dim"]),
             kv(f"{a}.attention.value_length", T_U32, m["head_dim"]),
             kv(f"{a}.rope.dimension_count", T_U32, m["head_dim"]),
             kv(f"{a}.rope.freq_base", T_F32, m["rope_base"]),
             kv(f"{a}.attention.layer_norm_rms_epsilon", T_F32, m["eps"]),
             kv(f"{a}.vocab_size", T_U32, m["vocab"])]
    if "experts" in m:
        items += [kv(f"{a}.expert_count", T_U32, m["experts"]),
                  kv(f"{a}.expert_used_count", T_U32, m["experts_used"]),
                  kv(f"{a}.expert_feed_forward_length", T_U32, m["expert_ffn"])]
    toks, types = vocab(m["vocab"])
    items += [kv("tokenizer.ggml.model", T_STRING, "llama"),
              kv_array("tokenizer.ggml.tokens", T_STRING, toks),
              kv_array("tokenizer.ggml.scores", T_F32, [0.0] * len(toks)),
              kv_array("tokenizer.ggml.token_type", T_I32, types),
              kv("tokenizer.ggml.bos_token_id", T_U32, 1),
              kv("tokenizer.ggml.eos_token_id", T_U32, 2),
              kv("tokenizer.ggml.unknown_token_id", T_U32, 0),
              kv("tokenizer.ggml.add_bos_token", T_BOOL, True)]
    ts = tensors(m)
    infos = []
    offsets = []
    off = 0
    for tname, dims, t in ts:
        off = (off + ALIGN - 1) // ALIGN * ALIGN
        offsets.append(off)
        infos.append(s_str(tname) + struct.pack("<I", len(dims))
                     + struct.pack(f"<{len(dims)}Q", *dims) + struct.pack("<IQ", t, off))
        off += nbytes(dims, t)
    head = GGUF_MAGIC + struct.pack("<IQQ", GGUF_VERSION, len(ts), len(items))
    head += b"".join(items) + b"".join(infos)
    head += b"\0" * ((ALIGN - len(head) % ALIGN) % ALIGN)
    return head, ts, offsets, off


def q8_pool(rng, nblocks):
    """Random Q8_0 blocks: a small positive fp16 scale (weights of about 0.02 std), 32 int8."""
    pool = np.empty((nblocks, Q8_BYTES), dtype=np.uint8)
    d = rng.uniform(1.5e-4, 3.5e-4, size=nblocks).astype("<f2")
    pool[:, :2] = d.view(np.uint8).reshape(nblocks, 2)
    pool[:, 2:] = rng.integers(-127, 128, size=(nblocks, Q8_BLOCK), dtype=np.int8).view(np.uint8)
    return pool.reshape(-1)


def write(name, path, header_only=False, seed=1234):
    m = MODELS[name]
    head, ts, offsets, data_bytes = header(name, m)
    rng = np.random.default_rng(seed)
    pool = q8_pool(rng, min(64 << 20, max(data_bytes, 1 << 20)) // Q8_BYTES)
    pool_blocks = len(pool) // Q8_BYTES
    chunk = 32 << 20
    t0 = time.perf_counter()
    part = path + ".part"  # renamed when complete: the file's existence means it is whole
    with open(part, "wb") as f:
        f.write(head)
        base = len(head)
        if header_only:  # a sparse file of the right size: the planner reads only the header
            f.truncate(base + data_bytes)
            ts = []
        for k, ((tname, dims, t), off) in enumerate(zip(ts, offsets)):
            pos = f.tell() - base
            if pos < off:
                f.write(b"\0" * (off - pos))
            n = nbytes(dims, t)
            if t == GGML_F32:
                if tname.endswith("ffn_gate_inp.weight"):
                    f.write(rng.normal(0, 0.02, size=n // 4).astype("<f4").tobytes())
                else:
                    f.write(np.ones(n // 4, dtype="<f4").tobytes())
                continue
            start = (k * 7919 % pool_blocks) * Q8_BYTES  # a block boundary, different per tensor
            view = memoryview(pool)
            left = n
            while left > 0:
                take = min(left, chunk, len(pool) - start)
                f.write(view[start:start + take])
                left -= take
                start = (start + take) % len(pool)
    os.replace(part, path)
    size = base + data_bytes
    if header_only:
        return size
    dt = time.perf_counter() - t0
    assert os.path.getsize(path) == size, (os.path.getsize(path), size)
    print(f"{path}: {size / 1e9:.2f} GB in {dt:.1f} s ({size / 1e9 / max(dt, 1e-9):.2f} GB/s)", file=sys.stderr)
    return size


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", choices=sorted(MODELS))
    ap.add_argument("out")
    ap.add_argument("--header-only", action="store_true", help="sparse data: for header readers only")
    a = ap.parse_args()
    write(a.model, a.out, a.header_only)


if __name__ == "__main__":
    main()
