// A Rust panic in a tab's node (its event loop, as a bug in a task would) is surfaced once and
// fails the node for good: one `error` event with source `crash`, events() iterators end, and
// every later call (and a later connect on the page) rejects with that same CrashError, rather
// than hanging on a module that aborted. The page loads a debug module built with the
// `test-hooks` feature (KEEP_LIGHT_TEST_HOOKS_PKG, built by scripts/test.sh), which adds
// `panicForTests`; the shipped module has no such export. In worker mode the panic happens in
// the node's Worker (the test calls the hook in the worker's own copy of the module): that node
// fails the same way, alone, and the page's next connect works.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { launchChromium, pageWithoutNode } from './chromium.mjs';

const url = process.env.KEEP_LIGHT_PAGE_URL;
const relay = process.env.KEEP_LIGHT_TEST_RELAY;
const hooks = process.env.KEEP_LIGHT_TEST_HOOKS_PKG;

/** A page whose pkg/ (the page's and its workers') is the module with the test hook. */
async function pageWithHooks(browser) {
  const context = await browser.newContext();
  await context.route('**/pkg/*', async (route) => {
    const file = path.join(hooks, path.basename(new URL(route.request().url()).pathname));
    const type = file.endsWith('.wasm') ? 'application/wasm' : 'text/javascript';
    await route.fulfill({ body: await readFile(file), contentType: type });
  });
  const page = await context.newPage();
  // Runs each call in turn: did every one reject, all with the first one's error?
  await page.addInitScript(() => {
    window.rejections = async (calls) => {
      const errors = [];
      for (const call of calls) {
        try {
          await call();
          errors.push(undefined);
        } catch (err) {
          errors.push(err);
        }
      }
      const [first] = errors;
      return { first, rejectedAll: errors.every((e) => e !== undefined),
        sameError: errors.every((e) => e === first) };
    };
  });
  const errors = [];
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(pageWithoutNode(url));
  return { page, errors };
}

test('a panic in the node fails it once, with one CrashError for every later call', async () => {
  assert.ok(url && relay && hooks, 'run through scripts/test.sh (settings missing)');
  const browser = await launchChromium();
  try {
    const { page, errors } = await pageWithHooks(browser);
    const result = await page.evaluate(async ({ relay }) => {
      const { KeepLight, CrashError } = await import('./src/keep-light.js');
      const { panicForTests } = await import('./pkg/keep_light.js');
      const node = await KeepLight.connect({ bootstrap: [relay], verifiers: 0 });
      const crashes = [];
      let crashed;
      const surfaced = new Promise((resolve) => { crashed = resolve; });
      node.addEventListener('error', ({ detail }) => {
        crashes.push(detail);
        crashed();
      });
      // An events() reader waiting when the node crashes: it must end, not hang.
      const reader = (async () => {
        const seen = [];
        for await (const event of node.events()) seen.push(event.event);
        return seen;
      })();
      await node.join('keep-light/crash-test');
      // The task panics once the event loop runs it, after this call returns.
      panicForTests('a bug in a task');
      await Promise.race([surfaced, new Promise((r) => setTimeout(r, 10_000))]);
      const { first, rejectedAll, sameError } = await window.rejections([
        () => node.publish('keep-light/crash-test', 'after the panic'),
        () => node.requestEntry(),
        () => node.joinGroup(['0x0000000000000000000000000000000000000001'], () => {}),
        () => node.stop(),
        () => KeepLight.connect({ bootstrap: [relay], verifiers: 0 }),
      ]);
      const readerEnded = await Promise.race([reader.then(() => true),
        new Promise((r) => setTimeout(() => r(false), 5_000))]);
      return {
        crashes,
        readerEnded,
        rejectedAll,
        sameError,
        isCrashError: first instanceof CrashError,
        code: first?.code,
        message: first?.message,
      };
    }, { relay });
    assert.equal(result.crashes.length, 1, JSON.stringify(result.crashes));
    assert.equal(result.crashes[0].source, 'crash');
    assert.match(result.crashes[0].error, /a bug in a task/);
    assert.ok(result.rejectedAll && result.sameError, JSON.stringify(result));
    assert.ok(result.isCrashError, JSON.stringify(result));
    assert.equal(result.code, 'crash');
    assert.match(result.message, /crashed: .*a bug in a task/s);
    assert.ok(result.readerEnded, 'the events() iterator ended');
    // The module's abort is the page's one uncaught error.
    assert.ok(errors.length <= 1 && errors.every((e) => /unreachable/.test(e)), errors.join('\n'));
  } finally {
    await browser.close();
  }
});

test('worker mode: a panic in the node\'s Worker fails that node alone, with one CrashError', async () => {
  assert.ok(url && relay && hooks, 'run through scripts/test.sh (settings missing)');
  const browser = await launchChromium();
  try {
    const { page, errors } = await pageWithHooks(browser);
    await page.evaluate(async ({ relay }) => {
      const { KeepLight } = await import('./src/keep-light.js');
      window.crashTest = { node: await KeepLight.connect({ bootstrap: [relay], worker: true, verifiers: 0 }),
        crashes: [] };
      window.crashTest.node.addEventListener('error', ({ detail }) => window.crashTest.crashes.push(detail));
      window.crashTest.reader = (async () => {
        for await (const _ of window.crashTest.node.events()) { /* until it ends */ }
        return true;
      })();
    }, { relay });
    const [worker] = page.workers().filter((w) => w.url().endsWith('/node-worker.js'));
    assert.ok(worker, `the node's Worker: ${page.workers().map((w) => w.url()).join(', ')}`);
    await worker.evaluate(async () => {
      const { panicForTests } = await import(new URL('../pkg/keep_light.js', self.location.href).href);
      panicForTests('a bug in a worker task');
    });
    const result = await page.evaluate(async ({ relay }) => {
      const { KeepLight, CrashError } = await import('./src/keep-light.js');
      const { node, crashes, reader } = window.crashTest;
      for (let i = 0; i < 100 && crashes.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
      const { first, rejectedAll, sameError } = await window.rejections([
        () => node.publish('keep-light/crash-test', 'after the panic'),
        () => node.joinGroup(['0x0000000000000000000000000000000000000001'], () => {}),
        () => node.stop(),
      ]);
      const readerEnded = await Promise.race([reader, new Promise((r) => setTimeout(() => r(false), 5_000))]);
      // Only that node failed: the page's module is whole and connects again.
      const next = await KeepLight.connect({ bootstrap: [relay], verifiers: 0 });
      const nextConnected = await new Promise((resolve) => {
        next.addEventListener('peer', ({ detail }) => { if (detail.connected) resolve(true); });
        setTimeout(() => resolve(false), 10_000);
      });
      await next.stop();
      return {
        crashes,
        readerEnded,
        nextConnected,
        rejectedAll,
        sameError,
        isCrashError: first instanceof CrashError,
        message: first?.message,
      };
    }, { relay });
    assert.equal(result.crashes.length, 1, JSON.stringify(result.crashes));
    assert.equal(result.crashes[0].source, 'crash');
    assert.match(result.crashes[0].error, /a bug in a worker task/);
    assert.ok(result.rejectedAll && result.sameError && result.isCrashError, JSON.stringify(result));
    assert.match(result.message, /crashed: .*a bug in a worker task/s);
    assert.ok(result.readerEnded, 'the events() iterator ended');
    assert.ok(result.nextConnected, 'a main-thread node connects after the worker crashed');
    assert.deepEqual(errors, [], 'the worker\'s abort stays in the worker');
  } finally {
    await browser.close();
  }
});
