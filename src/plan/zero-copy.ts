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
