import { coalesce, copyRun, f32, forEachRun, stridesOf, type Fn } from './common.ts';

/** Transpose of a float32 tensor: 32×32 tiles for (batched) 2-D transposes, strided run copies otherwise. */
export function transposeKernel(original: Fn): Fn {
  return (args) => {
    const { x } = args.inputs;
    const perm = args.attrs.perm as number[];
    const xv = f32(args.backend, x);
    if (!xv || perm.length !== x.shape.length) return original(args);
    const st = stridesOf(x.shape);
    const outShape = perm.map((p) => x.shape[p]);
    const n = xv.length;
    const out = new Float32Array(n);
    if (n > 0) {
      const c = coalesce(outShape, [perm.map((p) => st[p])]);
      const r = c.shape.length, s = c.strides[0];
      const C = c.shape[r - 2], R = c.shape[r - 1];
      if (r >= 2 && r <= 3 && s[r - 2] === 1 && s[r - 1] === C && (r === 2 || s[0] === R * C)) {
        // (batched) 2-D transpose [.., R, C] -> [.., C, R]: 32×32 tiles keep both sides in cache
        const T = 32, batch = n / (R * C);
        for (let bi = 0; bi < batch; bi++) {
          const off = bi * R * C;
          for (let i0 = 0; i0 < C; i0 += T) {
            const i1 = Math.min(C, i0 + T);
            for (let j0 = 0; j0 < R; j0 += T) {
              const j1 = Math.min(R, j0 + T);
              for (let i = i0; i < i1; i++) for (let j = j0; j < j1; j++) out[off + i * R + j] = xv[off + j * C + i];
            }
          }
        }
        return args.backend.makeTensorInfo(outShape, 'float32', out);
      }
      const inner = c.shape[r - 1], xs = s[r - 1];
      forEachRun(c.shape, c.strides, (o, offs) => copyRun(out, xv, inner, o, offs[0], xs));
    }
    return args.backend.makeTensorInfo(outShape, 'float32', out);
  };
}
