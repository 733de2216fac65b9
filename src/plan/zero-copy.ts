// How much slower a GEMM runs when its weight is read zero-copy from host memory, as a multiple of
// one pass over the weight at link speed, by micro-batch size M. The GEMM re-reads the weight once
// per tile row, so beyond a few hundred tokens it grows about linearly with M.
//
// Fit: log-log interpolation through the H100 measurements (gpu-machine-facts.md: bf16 8192 x 28672
// weight, one pass 8.70 ms; zero-copy GEMM 9.31 / 9.30 / 10.97 / 88.1 / 470.9 ms at M = 1 / 64 /
// 512 / 2048 / 8192), extrapolated with the last segment's slope. Assumed to carry over to other
// GPUs (it is a property of the GEMM's tiling more than of the card).

const POINTS: readonly (readonly [number, number])[] = [
  [1, 9.31 / 8.7],
  [64, 9.3 / 8.7],
  [512, 10.97 / 8.7],
  [2048, 88.1 / 8.7],
  [8192, 470.9 / 8.7],
];

/**
 * The same factor measured per weight shape on the H100 (bench/zc_gemm.py, cuBLAS through
 * F.linear, weight [out, in] in spillover's host pages; bench/results/runs/2026-11-27-h100-zc-gemm.json).
 * It steps with cuBLAS's tile height (128 or 256 rows of M per weight pass), so narrow weights
 * re-read more at mid M than the one wide GEMM above: 2.0-7.3x at M = 512 against 1.26x.
 * (4096 x 4096 was measured twice, as q/o and as a MoE expert's down projection; the first is kept.)
 */
const SHAPES: readonly {
  out: number;
  in: number;
  points: readonly (readonly [number, number])[];
}[] = [
  {
    out: 4096,
    in: 4096,
    points: [
      [1, 1.01],
      [16, 1.001],
      [64, 0.994],
      [128, 1.955],
      [256, 3.9],
      [512, 3.878],
      [1024, 3.906],
      [2048, 7.793],
      [4096, 15.588],
    ],
  }, // h4096-q/o
  {
    out: 1024,
    in: 4096,
    points: [
      [1, 1.162],
      [16, 1.278],
      [64, 1.041],
      [128, 1.028],
      [256, 7.347],
      [512, 7.346],
      [1024, 7.719],
      [2048, 14.523],
      [4096, 15.646],
    ],
  }, // h4096-k/v
  {
    out: 14336,
    in: 4096,
    points: [
      [1, 1.011],
      [16, 1.011],
      [64, 1.006],
      [128, 1.009],
      [256, 3.162],
      [512, 1.991],
      [1024, 4.982],
      [2048, 7.938],
      [4096, 16.978],
    ],
  }, // h4096-gate/up
  {
    out: 4096,
    in: 14336,
    points: [
      [1, 1.004],
      [16, 1.01],
      [64, 1.536],
      [128, 1.122],
      [256, 1.947],
      [512, 3.853],
      [1024, 3.862],
      [2048, 7.723],
      [4096, 15.431],
    ],
  }, // h4096-down
  {
    out: 32000,
    in: 4096,
    points: [
      [1, 1.045],
      [16, 1.037],
      [64, 1.029],
      [128, 1.099],
      [256, 2.072],
      [512, 2.005],
      [1024, 3.978],
      [2048, 11.252],
      [4096, 15.867],
    ],
  }, // h4096-head
  {
    out: 5120,
    in: 5120,
    points: [
      [1, 1.028],
      [16, 1.003],
      [64, 0.995],
      [128, 2.629],
      [256, 1.992],
      [512, 3.177],
      [1024, 3.928],
      [2048, 7.853],
      [4096, 15.755],
    ],
  }, // h5120-q/o
  {
    out: 1024,
    in: 5120,
    points: [
      [1, 1.075],
      [16, 1.121],
      [64, 0.998],
      [128, 1.475],
      [256, 3.753],
      [512, 7.208],
      [1024, 7.405],
      [2048, 14.333],
      [4096, 14.99],
    ],
  }, // h5120-k/v
  {
    out: 13824,
    in: 5120,
    points: [
      [1, 1.001],
      [16, 1.0],
      [64, 1.013],
      [128, 1.637],
      [256, 2.688],
      [512, 1.987],
      [1024, 5.942],
      [2048, 10.876],
      [4096, 21.777],
    ],
  }, // h5120-gate/up
  {
    out: 5120,
    in: 13824,
    points: [
      [1, 1.009],
      [16, 1.003],
      [64, 1.437],
      [128, 1.012],
      [256, 2.0],
      [512, 3.158],
      [1024, 4.017],
      [2048, 15.307],
      [4096, 15.958],
    ],
  }, // h5120-down
  {
    out: 32000,
    in: 5120,
    points: [
      [1, 1.038],
      [16, 1.042],
      [64, 1.048],
      [128, 1.377],
      [256, 1.02],
      [512, 2.008],
      [1024, 3.992],
      [2048, 11.316],
      [4096, 15.967],
    ],
  }, // h5120-head
  {
    out: 8192,
    in: 4096,
    points: [
      [1, 1.004],
      [16, 1.015],
      [64, 1.006],
      [128, 1.016],
      [256, 3.049],
      [512, 2.002],
      [1024, 3.952],
      [2048, 7.925],
      [4096, 15.8],
    ],
  }, // moe-expert-gate_up
];

/** Factor for a weight of shape [out, in] at micro-batch m: the measured curve of that shape when
 * there is one (linear between measured M, proportional to M past the last), else the general curve. */
export function zeroCopyGemmFactorForShape(m: number, out: number, inFeatures: number): number {
  const s = SHAPES.find((x) => x.out === out && x.in === inFeatures);
  if (!s) return zeroCopyGemmFactor(m);
  const pts = s.points;
  const first = pts[0] as readonly [number, number];
  if (m <= first[0]) return first[1];
  for (let i = 1; i < pts.length; i++) {
    const [x1, y1] = pts[i] as readonly [number, number];
    const [x0, y0] = pts[i - 1] as readonly [number, number];
    if (m <= x1) return y0 + ((y1 - y0) * (m - x0)) / (x1 - x0);
  }
  const last = pts[pts.length - 1] as readonly [number, number];
  return last[1] * (m / last[0]);
}

export function zeroCopyGemmFactor(m: number): number {
  const first = POINTS[0] as readonly [number, number];
  if (m <= first[0]) return first[1];
  for (let i = 1; i < POINTS.length; i++) {
    const [x1, y1] = POINTS[i] as readonly [number, number];
    const [x0, y0] = POINTS[i - 1] as readonly [number, number];
    if (m <= x1 || i === POINTS.length - 1) {
      const slope = Math.log(y1 / y0) / Math.log(x1 / x0);
      return Math.max(first[1], y0 * (m / x0) ** slope);
    }
  }
  return first[1];
}

/** Tokens per tile of llama.cpp's quantized matmul (MMQ, ggml-cuda/mmq.cuh: mmq_x is at most 128
 * on NVIDIA GPUs with tensor cores, and a 512-token micro-batch is cut into 4 such tiles). */
export const MMQ_TOKEN_TILE = 128;

/** The same factor for llama.cpp's quantized weights: every token tile is its own pass over the
 * weight, and a weight read zero-copy is not kept on the GPU between passes (the H100 per-shape
 * factors above step the same way, one pass per 128 or 256 rows of M). A routed expert sees only
 * the tokens routed to it, so `m` is its share of the micro-batch. */
export function mmqZeroCopyFactor(m: number): number {
  return Math.max(1, Math.ceil(m / MMQ_TOKEN_TILE));
}
