// Types of harness.mjs for the TypeScript test that uses it.
export const FLAGS: string[];
export function has(cmd: string): boolean;
export function buildHarness(cxx: string, arch: 'x64' | 'arm64', outDir: string, extra?: string[]): string;
export function runHarness(cmd: string, args: string[]): { status: number | null; lines: unknown[]; out: string };
export function canCrossArm64(): boolean;
