// Group channel from the page's JS API: the tab joins the group scripts/test.sh set up (three
// native `keep-light node --member … --echo` processes; the tab holds the fourth seat's key) and
// each native's answer to the tab's text arrives exactly once, its signature checked in a
// verifier worker. The same with the node in a Worker (`worker: true`): its group messages
// reach the page batched, and its own verifier pool is counted in KeepLight.verifierStats().
// On the main thread the page first runs the warm-up (two in-page nodes over the memory
// transport), which must run to the end and leave the real node working.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium, openPage } from './chromium.mjs';

const url = process.env.KEEP_LIGHT_PAGE_URL;
const relay = process.env.KEEP_LIGHT_TEST_RELAY;
const members = process.env.KEEP_LIGHT_TEST_GROUP?.split(',');
const key = process.env.KEEP_LIGHT_TEST_GROUP_KEY;

async function talkWithTheGroup(worker) {
  assert.ok(url && relay && members && key, 'run through scripts/test.sh (group settings missing)');
  const browser = await launchChromium();
  try {
    const { page, errors } = await openPage(browser, url);
    const result = await page.evaluate(async ({ relay, members, key, worker }) => {
      const { KeepLight, warmUp } = await import('./src/keep-light.js');
      const warmed = worker ? undefined : await warmUp();
      const node = await KeepLight.connect({ bootstrap: [relay], keyHex: key, worker });
      const echoes = {};
      const text = `page-group-hello-${Date.now()}`;
      let done;
      const allAnswered = new Promise((resolve) => { done = resolve; });
      // Listening for events in the same turn as openGroup (which runs on while the node's
      // event pump starts) must not trip the wasm object's borrow.
      const events = [];
      node.addEventListener('event', ({ detail }) => events.push(detail.event));
      const group = await node.openGroup(members, (message) => {
        if (message.text === `echo:${text}`) {
          echoes[message.sender] = (echoes[message.sender] ?? 0) + 1;
          if (Object.keys(echoes).length === members.length - 1) done();
        }
      });
      group.send(text);
      await Promise.race([allAnswered, new Promise((r) => setTimeout(r, 30_000))]);
      // Natives republish their answers with backoff: listen a little longer, then count.
      await new Promise((r) => setTimeout(r, 2_000));
      group.close();
      const running = KeepLight.verifierStats();
      await node.close();
      return { echoes, self: node.address, running, verifiers: KeepLight.verifierStats(), events, warmed };
    }, { relay, members, key, worker });
    assert.equal(result.warmed, worker ? undefined : true, 'the warm-up ran to the end');
    const natives = members.filter((m) => m !== result.self);
    assert.equal(natives.length, 3);
    for (const native of natives) {
      assert.equal(result.echoes[native], 1, `answers from ${native}: ${JSON.stringify(result.echoes)}`);
    }
    // Their signatures were checked in the page's verifier workers, not on its main thread.
    // A stopped node's work stays counted.
    const { signatures, failures } = result.verifiers;
    assert.ok(result.running.workers >= 1 && signatures >= natives.length && failures === 0,
      `verifier workers: ${JSON.stringify(result)}`);
    assert.ok(signatures >= result.running.signatures, JSON.stringify(result));
    assert.ok(result.events.includes('subscribed'), `events: ${result.events.join(', ')}`);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
}

test('KeepLight.openGroup: the tab talks with three native group members', () => talkWithTheGroup(false));

test('KeepLight.openGroup in worker mode: the same, the node in a Worker', () => talkWithTheGroup(true));
