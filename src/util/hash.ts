// sha256 of strings, bytes and files (streamed, so a multi-GB checkpoint is never in memory at once).
import crypto from 'node:crypto';
import fs from 'node:fs';

export function sha256(data: string | Uint8Array): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

export async function sha256File(file: string): Promise<string> {
  const h = crypto.createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}
