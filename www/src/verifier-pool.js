// The Web Workers that check envelope signatures for the nodes of this page (Rust's
// platform::Offload and src/browser/verifier.rs). A node posts batches of prepared signatures
// (97 bytes each: hash ‖ r ‖ s ‖ v) and gets back their signers (21 bytes each) in order, so
// the public-key recovery, most of a received message's cost, never runs on the main thread.
// Each worker loads the same wasm module and runs only `serveVerifications`.
//
// A batch goes to the worker with the fewest outstanding; the node bounds what is in flight. A
// worker that fails (its script or module did not load, or it crashed) rejects its batches and
// is replaced once; the node then checks those batches itself, so nothing is lost.

// `new Worker(new URL(…, import.meta.url))` written out in one expression: the form bundlers
// (Vite, webpack) recognise and bundle as a worker.

export class VerifierPool {
  #workers = [];
  #nextId = 1;
  /** @type {Map<number, {resolve: Function, reject: Function, worker: object}>} */
  #pending = new Map();
  /** Work done so far, for benchmarks: batches, signatures, and the workers' busy time. */
  stats = { batches: 0, signatures: 0, busyMs: 0, failures: 0 };

  /** @param {number} size workers to start */
  constructor(size) {
    for (let i = 0; i < size; i += 1) this.#workers.push(this.#spawn(true));
  }

  get size() {
    return this.#workers.length;
  }

  #spawn(replaceable) {
    const entry = { worker: new Worker(new URL('./verifier-worker.js', import.meta.url), { type: 'module' }), outstanding: 0, replaceable };
    entry.worker.onmessage = ({ data }) => {
      const job = this.#pending.get(data.id);
      if (!job) return;
      this.#pending.delete(data.id);
      entry.outstanding -= 1;
      if (data.error) {
        this.stats.failures += 1;
        job.reject(new Error(data.error));
        return;
      }
      this.stats.batches += 1;
      this.stats.signatures += data.count;
      this.stats.busyMs += data.ms;
      job.resolve(data.replies);
    };
    entry.worker.onerror = (event) => this.#fail(entry, event.message || 'verifier worker failed');
    return entry;
  }

  #fail(entry, reason) {
    for (const [id, job] of this.#pending) {
      if (job.worker !== entry) continue;
      this.#pending.delete(id);
      this.stats.failures += 1;
      job.reject(new Error(reason));
    }
    entry.worker.terminate();
    const index = this.#workers.indexOf(entry);
    if (index < 0) return;
    // One replacement per worker: one that cannot load would fail for ever.
    if (entry.replaceable) this.#workers[index] = this.#spawn(false);
    else this.#workers.splice(index, 1);
  }

  /**
   * The signers of a batch of prepared signatures.
   * @param {Uint8Array} requests 97 bytes per signature (transferred: do not use it after)
   * @returns {Promise<Uint8Array>} 21 bytes per signature, in order
   */
  run(requests) {
    if (this.#workers.length === 0) return Promise.reject(new Error('no verifier worker'));
    const entry = this.#workers.reduce((a, b) => (b.outstanding < a.outstanding ? b : a));
    const id = this.#nextId;
    this.#nextId += 1;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, worker: entry });
      entry.outstanding += 1;
      entry.worker.postMessage({ id, requests }, [requests.buffer]);
    });
  }
}
