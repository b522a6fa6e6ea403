// Starts the keep-light binary (KEEP_LIGHT_BIN, set by scripts/test.sh) for the page tests and
// reads its JSON lines.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/**
 * Starts the binary with `args`.
 * @returns {{child: import('node:child_process').ChildProcess,
 *            next: (pick: (line: object) => boolean, what: string) => Promise<object>}}
 *   `next` resolves with the first stdout line (seen already or to come) that `pick` accepts,
 *   and rejects after 30 s naming `what`.
 */
export function startBinary(args) {
  const child = spawn(process.env.KEEP_LIGHT_BIN, args, { stdio: ['ignore', 'pipe', 'ignore'] });
  const lines = [];
  const waiters = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    const value = JSON.parse(line);
    lines.push(value);
    for (const w of [...waiters]) {
      if (w.pick(value)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(value);
      }
    }
  });
  const next = (pick, what) => {
    const seen = lines.find(pick);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      waiters.push({ pick, resolve });
      // unref: a timer still pending must not keep the test process alive.
      setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 30_000).unref();
    });
  };
  return { child, next };
}
