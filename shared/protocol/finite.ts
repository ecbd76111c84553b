// NaN/Inf detection for tensors. x - x is 0 for every finite x and NaN for
// NaN and +-Inf, so one subtraction and compare per element does both checks.

/** Index of the first NaN or +-Infinity in `values`, or -1 when all are finite. */
export function checkFinite(values: Float32Array | Float64Array): number {
  const n = values.length;
  for (let i = 0; i < n; i++) {
    const x = values[i] as number;
    if (x - x !== 0) return i;
  }
  return -1;
}
