// Profiles the tab during a group burst (run by scripts/profile-browser.sh): one node, started
// here through the page API on a page that has none of its own (the demo page without ?relay=),
// joins the group of three native `node --member … --echo` processes, asks each for `burst:N`,
// and Chromium's sampling profiler records the tab until every text has arrived. Prints one JSON
// line: messages per second through the page API (from the request to the last text), the
// tab's main-thread CPU time per message (every sample but `(idle)` over the recording: JS and
// wasm, garbage collection and `(program)`, the renderer's own work such as WebSocket dispatch;
// its inverse is the tab's capacity when the senders keep up) and the functions with the most
// self time (wasm functions by their Rust names), so a change to the hot path can be judged by
// its profile; also the WebSocket frames the tab received per text (each frame is a browser
// event and a call into wasm). Envelope signatures are checked in the page's verifier workers
// (KeepLight.connect's `verifiers`); their busy time is reported apart from the main thread's
// (`worker_cpu_us_per_msg`), with the signatures they checked.
//
// Environment: KEEP_LIGHT_PAGE_URL (a page that starts no node), KEEP_LIGHT_TEST_RELAY,
// KEEP_LIGHT_TEST_GROUP, KEEP_LIGHT_TEST_GROUP_KEY (as the page tests), KEEP_LIGHT_BURST (texts
// per native, 3000), KEEP_LIGHT_PROFILE_TOP (functions listed, 25), KEEP_LIGHT_PROFILE_OUT
// (optional: where to save the raw .cpuprofile for DevTools), KEEP_LIGHT_VERIFIERS (workers;
// 0 checks signatures on the main thread; default: KeepLight.connect's), KEEP_LIGHT_WORKER=1
// (the node in a dedicated Worker, `worker: true`: the main thread then only gets each group
// text posted from the worker, and the longest main-thread task shows whether it stays free).
import { writeFileSync } from 'node:fs';
import { launchChromium, openPage } from '../e2e/chromium.mjs';

const url = process.env.KEEP_LIGHT_PAGE_URL;
const relay = process.env.KEEP_LIGHT_TEST_RELAY;
const members = process.env.KEEP_LIGHT_TEST_GROUP?.split(',');
const key = process.env.KEEP_LIGHT_TEST_GROUP_KEY;
const burst = Number(process.env.KEEP_LIGHT_BURST ?? 3000);
const top = Number(process.env.KEEP_LIGHT_PROFILE_TOP ?? 25);
const verifiers = process.env.KEEP_LIGHT_VERIFIERS === undefined
  ? undefined : Number(process.env.KEEP_LIGHT_VERIFIERS);
const worker = process.env.KEEP_LIGHT_WORKER === '1';
if (!url || !relay || !members || !key) {
  throw new Error('run through scripts/profile-browser.sh (page or group settings missing)');
}
// With a relay in its URL the demo page starts a node of its own, which would share the main
// thread and be counted in it.
if (new URL(url).searchParams.has('relay')) {
  throw new Error(`${url} starts a node of its own; profile on the page without ?relay=`);
}

const browser = await launchChromium();
try {
  const { page, errors } = await openPage(browser, url);
  // Console lines during the run, counted by their first words: logging per message is a cost.
  const consoleLines = new Map();
  page.on('console', (message) => {
    const head = message.text().replace(/[0-9a-f]{8,}|\d+/gi, '…').slice(0, 100);
    consoleLines.set(head, (consoleLines.get(head) ?? 0) + 1);
  });
  await page.evaluate(async ({ relay, members, key, verifiers, worker }) => {
    const { KeepLight } = await import('./src/keep-light.js');
    window.KeepLight = KeepLight;
    const node = await KeepLight.connect({ bootstrap: [relay], keyHex: key, verifiers, worker });
    // The main thread's longest tasks (the Long Tasks API reports those over 50 ms).
    window.longTasks = [];
    new PerformanceObserver((list) => {
      for (const task of list.getEntries()) window.longTasks.push(task.duration);
    }).observe({ type: 'longtask' });
    window.burst = { received: 0, first: 0, last: 0, dropped: {}, rejected: {} };
    // What the tab dropped or refused, by reason (running totals): a burst should lose nothing.
    node.addEventListener('event', ({ detail }) => {
      if (detail.event === 'dropped') window.burst.dropped[detail.reason] = detail.total;
      if (detail.event === 'rejected') window.burst.rejected[detail.reason] = detail.total;
    });
    window.group = await node.openGroup(members, (message) => {
      if (message.text.startsWith('burst-')) {
        const now = performance.now();
        window.burst.received += 1;
        window.burst.first ||= now;
        window.burst.last = now;
      }
    });
  }, { relay, members, key, verifiers, worker });

  const cdp = await page.context().newCDPSession(page);
  let frames = 0;
  cdp.on('Network.webSocketFrameReceived', () => { frames += 1; });
  await cdp.send('Network.enable');
  await cdp.send('Profiler.enable');
  await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
  await cdp.send('Profiler.start');
  const expected = burst * (members.length - 1);
  const result = await page.evaluate(async ({ burst, expected }) => {
    window.burst.requested = performance.now();
    window.group.send(`burst:${burst}`);
    // Wait for the whole burst, or give up after 30 s without a first text or 5 s without
    // progress.
    let seen = 0;
    let since = performance.now();
    while (window.burst.received < expected) {
      await new Promise((r) => setTimeout(r, 50));
      const now = performance.now();
      if (window.burst.received !== seen) {
        seen = window.burst.received;
        since = now;
      } else if (now - since > (seen === 0 ? 30_000 : 5_000)) {
        break;
      }
    }
    window.group.close();
    return { ...window.burst, verifiers: window.KeepLight.verifierStats(),
      longTasks: window.longTasks.length, longestTaskMs: Math.max(0, ...window.longTasks) };
  }, { burst, expected });
  const { profile } = await cdp.send('Profiler.stop');
  if (process.env.KEEP_LIGHT_PROFILE_OUT) {
    writeFileSync(process.env.KEEP_LIGHT_PROFILE_OUT, JSON.stringify(profile));
  }

  // Self time per function: samples landing in each node, summed by name.
  const sampleCount = new Map();
  for (const id of profile.samples) sampleCount.set(id, (sampleCount.get(id) ?? 0) + 1);
  const byName = new Map();
  for (const node of profile.nodes) {
    const samples = sampleCount.get(node.id) ?? 0;
    const name = node.callFrame.functionName || `(anonymous ${node.callFrame.url})`;
    byName.set(name, (byName.get(name) ?? 0) + samples);
  }
  const total = profile.samples.length;
  // The main thread is busy in every sample but `(idle)`: `(program)` is the renderer's native
  // work (WebSocket frames, event dispatch), which a text costs as much as its wasm does.
  const busy = total - (byName.get('(idle)') ?? 0);
  const seconds = (result.last - result.requested) / 1000;
  // The tab's main-thread CPU time over the whole recording (request, burst and the wait after
  // it), per delivered text: what one tab can validate and deliver when the senders keep up.
  const busyMs = ((profile.endTime - profile.startTime) / 1000) * (busy / total);
  const cpuPerMessageUs = (busyMs * 1000) / Math.max(result.received, 1);
  console.log(JSON.stringify({
    tab_msgs_per_s: Math.round(result.received / Math.max(seconds, 1e-9)),
    delivered: result.received,
    expected,
    burst_ms: Math.round(seconds * 1000),
    first_ms: Math.round(result.first ? result.first - result.requested : 0),
    tab_busy_ms: Math.round(busyMs),
    tab_cpu_us_per_msg: Math.round(cpuPerMessageUs),
    tab_capacity_msgs_per_s: Math.round(1e6 / cpuPerMessageUs),
    node_in_worker: worker,
    main_long_tasks: result.longTasks,
    main_longest_task_ms: Math.round(result.longestTaskMs),
    verifier_workers: result.verifiers.workers,
    verified_in_workers: result.verifiers.signatures,
    worker_batches: result.verifiers.batches,
    worker_busy_ms: Math.round(result.verifiers.busyMs),
    worker_cpu_us_per_msg: Math.round((result.verifiers.busyMs * 1000) / Math.max(result.received, 1)),
    dropped: result.dropped,
    rejected: result.rejected,
    ws_frames_per_msg: Number((frames / Math.max(result.received, 1)).toFixed(2)),
    self_time: [...byName.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, samples]) => ({ share: Number((samples / total).toFixed(4)), name })),
    console: [...consoleLines.entries()].sort((a, b) => b[1] - a[1]).slice(0, 5)
      .map(([text, count]) => ({ count, text })),
  }));
  if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
} finally {
  await browser.close();
}
