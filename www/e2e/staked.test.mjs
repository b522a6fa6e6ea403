// A tab under the `staked` firewall asks the dev chain (`keep-light chain`: JSON-RPC with
// `fetch`, across origins) about each tab that dials it through the relay. A tab acting for a
// wallet that holds the minimum stake is admitted; a tab whose operator holds less is banned as
// `policy_unstaked` once the attestation grace ends. scripts/test.sh provides the relay
// (KEEP_LIGHT_TEST_RELAY), the page and the binary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { launchChromium, startTab } from './chromium.mjs';
import { startBinary } from './processes.mjs';

const bin = process.env.KEEP_LIGHT_BIN;
const url = process.env.KEEP_LIGHT_PAGE_URL;
const relay = process.env.KEEP_LIGHT_TEST_RELAY;

const run = (...args) => JSON.parse(execFileSync(bin, args, { encoding: 'utf8' }));
const key = (byte) => `0x${byte.repeat(32)}`;

test('a staked tab admits the dialers the chain recognises and bans the others', async () => {
  assert.ok(bin && url && relay, 'run through scripts/test.sh (settings missing)');
  const wallet = run('id', '--key-hex', key('1f'));
  const session = run('id', '--key-hex', key('2f'));
  const attestation = run('attest', 'create', '--key-hex', key('1f'),
    '--peer', session.peer_id, '--chain-id', '31337');
  const poor = run('id', '--key-hex', key('3f'));
  const chain = startBinary(['chain', '--minimum-stake', '100',
    '--stake', `${wallet.address}=100`, '--stake', `${poor.address}=99`]);
  const browser = await launchChromium();
  try {
    const { rpc } = await chain.next((line) => line.rpc, 'the chain URL');
    const a = await startTab(browser, url, { bootstrap: [relay], reachable: true,
      firewall: 'staked', chain: rpc });
    const circuit = (await a.until((e) => e.event === 'listening' && e.address.includes('/p2p-circuit/'))).address;
    const aPeer = await a.page.evaluate(() => window.tab.node.peerId);
    const dialA = async (options) => {
      const tab = await startTab(browser, url, { bootstrap: [relay], ...options });
      await tab.until((e) => e.event === 'health' && e.relays === 1);
      await tab.page.evaluate((circuit) => window.tab.node.dial(circuit), circuit);
      return tab;
    };

    const b = await dialA({ keyHex: key('2f'), attestation });
    const staked = await a.until((e, operator) => e.event === 'operatorChecked' && e.operator === operator,
      wallet.address);
    assert.deepEqual([staked.recognised, staked.stake, staked.minimum], [true, '100', '100']);
    const ack = await b.until((e, peer) => e.event === 'attestationAcknowledged' && e.peer === peer, aPeer);
    assert.equal(ack.accepted, true);

    const c = await dialA({ keyHex: key('3f') });
    const unstaked = await a.until((e, operator) => e.event === 'operatorChecked' && e.operator === operator,
      poor.address);
    assert.deepEqual([unstaked.recognised, unstaked.stake], [false, '99']);
    const banned = await a.until((e, peer) => e.event === 'banned' && e.peer === peer, poor.peer_id);
    assert.equal(banned.reason, 'policy_unstaked');
    // B outlived C's grace (the same 10 s) without a ban: the chain's yes admitted it.
    const bans = await a.page.evaluate(() => window.tab.events.filter((e) => e.event === 'banned').map((e) => e.peer));
    assert.deepEqual(bans, [poor.peer_id]);
    assert.deepEqual([...a.errors, ...b.errors, ...c.errors], []);
  } finally {
    await browser.close();
    chain.child.kill();
  }
});
