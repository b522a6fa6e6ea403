// One signature verifier (see verifier-pool.js): loads the same wasm module and answers each
// batch of prepared signatures with their signers, with the time it took.
import init, { serveVerifications } from '../pkg/keep_light.js';

const ready = init();

self.onmessage = async ({ data: { id, requests } }) => {
  try {
    await ready;
    const started = performance.now();
    const replies = serveVerifications(requests);
    const ms = performance.now() - started;
    self.postMessage({ id, replies, ms, count: requests.length / 97 }, [replies.buffer]);
  } catch (err) {
    self.postMessage({ id, error: String(err?.message ?? err) });
  }
};
