// The one efficiency model every prediction uses. No constant here is fitted to a published case;
// each is justified from measurements or public reports (docs/plan.md lists them with sources).

/** Streaming-read kernel vs vendor spec VRAM bandwidth: H100 SXM measured 3050 of 3350 GB/s
 * (hwprobe, bench/results/runs/2026-11-27-h100-hwprobe.json). Turns a spec-sheet number into what a kernel can reach. */
export const VRAM_ACHIEVABLE_OF_SPEC = 0.91;

/** Decode (batch-1 matrix-vector) kernels vs achievable VRAM read bandwidth. llama.cpp's
 * quantized mat-vec kernels reach ~65-75% of spec bandwidth on recent cards (e.g. peers.md 2.5:
 * Llama-3.1-8B Q4 all on a 5070 Ti, 105.8 tok/s for 4.9 GB at 896 GB/s spec = 58%, under WSL2);
 * 0.75 of the achievable read (0.70 of spec) is the middle of that range. */
export const GPU_DECODE_EFF = 0.75;

/** Achievable all-core RAM read vs theoretical DDR bandwidth: reports are 70-90% of spec
 * (peers.md 1.2; guru3d DDR4-3200 dual channel: 46 of 51.2 GB/s). 0.75 is the lower-middle,
 * because servers with many channels land lower than desktops. */
export const RAM_ACHIEVABLE_OF_THEORETICAL = 0.75;

/** llama.cpp's CPU quantized mat-vec vs achievable RAM read bandwidth: dequantization, dot
 * products and per-op thread barriers keep it below a pure read loop. */
export const CPU_DECODE_EFF = 0.7;

/** Fraction of fp16 tensor peak reached by prefill GEMMs (quantized weights, batch 512). */
export const GPU_PREFILL_EFF = 0.4;

/** CPU GEMM throughput per thread, GFLOP/s, for prompt batches below llama.cpp's upload threshold
 * (AVX2 FMA: 32 flop/cycle peak fp32 at ~3 GHz, a third of it with quantized weights). */
export const CPU_GFLOPS_PER_THREAD = 30;

/** Every hand-off between the GPU and the CPU backend in one decode step: a stream sync plus a
 * small activation copy each way (tens of microseconds; llama.cpp's scheduler splits). */
export const SPLIT_SYNC_S = 40e-6;

/** Per-token fixed cost of one decode step (kernel launches, sampling), llama.cpp with CUDA graphs. */
export const STEP_OVERHEAD_S = 1e-3;

/** Prompt batches at or above this size make llama.cpp upload CPU-resident weights to the GPU
 * instead of computing on the CPU (ggml-cuda offload_op; ik_llama.cpp issue 255). */
export const LLAMA_CPP_OFFLOAD_MIN_BATCH = 32;

/** CUDA context, cuBLAS workspace and allocator slack kept out of the weight budget. */
export const VRAM_OVERHEAD_BYTES = 512 * 2 ** 20;
