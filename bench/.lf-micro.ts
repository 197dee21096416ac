import { loadNativeGemm } from '../src/perf/native.ts';
const g = loadNativeGemm()!;
const N = 512, r = 8;
const shapes: Array<[string, number, number, number]> = [['q', 640, 1024, 1], ['k/v', 640, 256, 2], ['o', 1024, 640, 1], ['gate/up', 640, 2048, 2], ['down', 2048, 640, 1]];
const rand = (n: number) => Float32Array.from({ length: n }, () => Math.random() - 0.5);
function time(f: () => void, reps = 40): number { f(); const ts: number[] = []; for (let i = 0; i < reps; i++) { const t0 = performance.now(); f(); ts.push(performance.now() - t0); } ts.sort((a, b) => a - b); return +ts[reps >> 2].toFixed(3); }
let totA = 0, totB = 0;
for (const [name, inF, outF, count] of shapes) {
  const x = rand(N * inF), A = rand(r * inF), B = rand(outF * r), dy = rand(N * outF), u = rand(N * r), du = rand(N * r);
  const c1 = new Float32Array(N * r), c2 = new Float32Array(N * outF), c3 = new Float32Array(outF * r), c4 = new Float32Array(r * inF), c5 = new Float32Array(N * inF);
  const cur = {
    xa: time(() => g.matmul(x, A, c1, 1, N, r, inF, false, true, 0, 0)),
    ub: time(() => g.matmul(u, B, c2, 1, N, outF, r, false, true, 0, 0)),
    dB: time(() => g.matmul(dy, u, c3, 1, outF, r, N, true, false, 0, 0)),
    dU: time(() => g.matmul(dy, B, c1, 1, N, r, outF, false, false, 0, 0)),
    dA: time(() => g.matmul(du, x, c4, 1, r, inF, N, true, false, 0, 0)),
    dx: time(() => g.matmul(du, A, c5, 1, N, inF, r, false, false, 0, 0)),
  };
  const alt = {
    xaT: time(() => g.matmul(A, x, c1, 1, r, N, inF, false, true, 0, 0)),
    ubT: time(() => g.matmul(u, B, c2, 1, N, outF, r, true, true, 0, 0)),
    dBT: time(() => { g.matmul(u, dy, c3, 1, r, outF, N, false, false, 0, 0); }),
    dUT: time(() => g.matmul(B, dy, c1, 1, r, N, outF, true, true, 0, 0)),
    dAT: time(() => g.matmul(du, x, c4, 1, r, inF, N, false, false, 0, 0)),
    dxT: time(() => g.matmul(du, A, c5, 1, N, inF, r, true, false, 0, 0)),
  };
  const scaleOut = time(() => { for (let i = 0; i < c2.length; i++) c2[i] *= 1.5; });
  const s = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);
  totA += count * s(cur); totB += count * s(alt);
  console.log(name, count, JSON.stringify(cur), s(cur).toFixed(2), JSON.stringify(alt), s(alt).toFixed(2), 'scale[N,out]', scaleOut);
}
console.log('per layer ms: current', totA.toFixed(2), 'transposed', totB.toFixed(2));
