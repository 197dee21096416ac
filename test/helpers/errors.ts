import { expect } from 'vitest';
import { UserError } from '../../src/errors.ts';

/** The error `p` rejects with (the test fails if it resolves). */
export async function rejection(p: Promise<unknown>): Promise<UserError> {
  try {
    await p;
  } catch (e) {
    return e as UserError;
  }
  throw new Error('expected an error');
}

/** `p` rejects with a one-line UserError containing every part; returns its message. */
export async function expectUserError(p: Promise<unknown>, ...parts: string[]): Promise<string> {
  const err = await p.then(() => null, (e) => e);
  expect(err).toBeInstanceOf(UserError);
  const msg = (err as Error).message;
  expect(msg).not.toContain('\n');
  for (const part of parts) expect(msg).toContain(part);
  return msg;
}
