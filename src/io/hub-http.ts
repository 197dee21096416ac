// HTTP to the Hub under real conditions: a timeout on the response headers and on every silence of the body (a
// stalled body fails instead of hanging), and bounded exponential backoff on 429, 5xx and dropped connections,
// honouring Retry-After up to a cap. Tunable for tests and slow links:
//   GEMMA_TUNE_HUB_TIMEOUT_MS   no headers / no body byte for this long = a failed attempt (default 30000)
//   GEMMA_TUNE_HUB_RETRIES      retries after the first attempt (default 5)
//   GEMMA_TUNE_HUB_BACKOFF_MS   first wait; doubled each retry (default 1000)
//   GEMMA_TUNE_HUB_MAX_WAIT_MS  cap on one wait, Retry-After included (default 60000)

export interface HubHttpPolicy {
  timeoutMs: number;
  retries: number;
  backoffMs: number;
  maxWaitMs: number;
}

function envInt(env: NodeJS.ProcessEnv, name: string, dflt: number): number {
  const v = env[name];
  return v !== undefined && /^\d+$/.test(v.trim()) ? Number(v) : dflt;
}

export function hubHttpPolicy(env: NodeJS.ProcessEnv = process.env): HubHttpPolicy {
  return {
    timeoutMs: Math.max(1, envInt(env, 'GEMMA_TUNE_HUB_TIMEOUT_MS', 30_000)),
    retries: envInt(env, 'GEMMA_TUNE_HUB_RETRIES', 5),
    backoffMs: envInt(env, 'GEMMA_TUNE_HUB_BACKOFF_MS', 1_000),
    maxWaitMs: envInt(env, 'GEMMA_TUNE_HUB_MAX_WAIT_MS', 60_000),
  };
}

/** Statuses worth another try (as huggingface_hub's http_backoff). */
export const RETRY_STATUS = new Set([429, 500, 502, 503, 504]);

/** Milliseconds before retry number `attempt` (0-based): Retry-After when the server gave one, else backoff × 2^attempt; capped. */
export function retryDelay(policy: HubHttpPolicy, attempt: number, retryAfter: string | null, now = Date.now()): number {
  let ms = policy.backoffMs * 2 ** attempt;
  if (retryAfter) {
    const s = retryAfter.trim();
    if (/^\d+(\.\d+)?$/.test(s)) ms = Number(s) * 1000;
    else if (!Number.isNaN(Date.parse(s))) ms = Math.max(0, Date.parse(s) - now);
  }
  return Math.min(ms, policy.maxWaitMs);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A timer that aborts a request when nothing arrives for `ms`: armed for the headers, re-armed (`kick`) by every
 * body chunk, stopped (`done`) at the end.
 */
export class Watchdog {
  readonly controller = new AbortController();
  private timer: NodeJS.Timeout | null = null;
  timedOut = false;

  constructor(private readonly ms: number) {
    this.kick();
  }

  kick(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timedOut = true;
      this.controller.abort();
    }, this.ms);
  }

  done(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

/** The cause of a failed fetch or body read, as a short code (ECONNRESET, timeout, ...). */
export function networkCause(e: unknown, timedOut: boolean): string {
  if (timedOut) return 'timeout';
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (e as Error).message;
}

/**
 * The Hub's own explanation of an error response (X-Error-Message, e.g. "Invalid credentials in Authorization
 * header"), made safe to print: one line, no control characters, at most 300 characters, never the token.
 */
export function hubErrorText(res: Response, token: string | null): string | null {
  const raw = res.headers.get('x-error-message');
  if (!raw) return null;
  let s = raw.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').replace(/\s+/g, ' ').trim();
  if (token) s = s.split(token).join('***');
  if (s.length > 300) s = s.slice(0, 297) + '...';
  return s || null;
}
