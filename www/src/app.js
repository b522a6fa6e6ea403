// The demo page (`keep-light dev` serves it: ?relay=MULTIADDR[&relay=…]&chain=RPC_URL). The
// visitor picks an identity (an EIP-6963 wallet, a dev key, or a keystore); the tab connects to
// the relays, enrols on the chain as a beacon member, and shows its relays, peers, groups, the
// DKG phase by phase, and every entry on chain, verified in this tab, with a plot of entry times.
import uPlot from 'uplot';
import { KeepLight, WalletRejectedError, loadWasm } from './keep-light.js';

const params = new URLSearchParams(location.search);
const relays = params.getAll('relay');
const chain = params.get('chain') ?? undefined;
// ?worker=1: the node runs in a dedicated Worker (WebSocket relays only).
const worker = params.get('worker') === '1';
const $ = (id) => document.getElementById(id);
const PHASES = ['ephemeral_keys', 'commitments', 'share_accusations', 'points',
  'point_accusations', 'disclosure', 'result_signing'];
const PHASE_NAMES = ['Keys', 'Commitments', 'Share complaints', 'Points', 'Point complaints',
  'Disclosure', 'Result'];

let client;
/** What the dashboard shows, rebuilt from events. */
let view;

function freshView() {
  return {
    peers: new Set(),
    groups: new Map(), // group id → {seats, members, restored, rate}
    dkg: null, // {session, seats, size, startBlock, phase, finished, ok, error, misbehaved}
    entries: new Map(), // request → entry detail
    signers: new Map(), // request → seats this tab combined
    shareTimes: new Map(), // request → ms after the tab's own share that each other share came
    blocks: [], // [performance.now(), number] of the last block events, for the block time
    verdicts: new Map(), // relay peer → its answer to the wallet's delegation
    label: '',
  };
}

function log(line) {
  const el = $('log');
  el.textContent = `${new Date().toISOString().slice(11, 23)} ${line}\n${el.textContent}`.slice(0, 20_000);
}

function setStatus(text, cls = '') {
  $('status').textContent = text;
  $('status').className = `pill ${cls}`;
}

function showError(message, { notice = false } = {}) {
  $('error-text').textContent = message;
  $('error').className = notice ? 'banner notice' : 'banner';
  $('error').hidden = false;
  $('error-back').hidden = notice;
}

function clearError() {
  $('error').hidden = true;
}

const short = (hex, n = 10) => (hex && hex.length > 2 * n + 2 ? `${hex.slice(0, n + 2)}…${hex.slice(-n)}` : hex ?? '–');
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
};

// ---- connect -----------------------------------------------------------------------------

async function listWallets() {
  const box = $('wallets');
  const wallets = await KeepLight.wallets();
  box.replaceChildren();
  if (wallets.length === 0) {
    box.append(el('span', { className: 'muted', textContent: 'No browser wallet found.' }));
    return;
  }
  wallets.forEach(({ info, provider }, i) => {
    const button = el('button', { type: 'button', className: 'secondary' });
    if (i === 0) button.id = 'wallet';
    button.dataset.wallet = info.uuid;
    if (info.icon) button.append(el('img', { src: info.icon, alt: '' }));
    button.append(`Connect ${info.name}`);
    button.addEventListener('click', () => start({ wallet: provider }, info.name));
    box.append(button);
  });
}

function setChoicesEnabled(enabled) {
  for (const button of $('connect').querySelectorAll('button, input')) button.disabled = !enabled;
}

/** Connects with `identity`; on failure shows why and leaves the connect panel usable. */
async function start(identity, label) {
  clearError();
  setChoicesEnabled(false);
  setStatus('connecting…');
  try {
    if (client) await client.stop().catch(() => {});
    view = freshView();
    const member = Boolean(chain) && $('member').checked;
    client = await KeepLight.connect({ bootstrap: relays, chain, identity, member, worker });
    window.keepLight = client; // for the console and page tests
    wire(client);
    $('address').textContent = client.operator;
    $('peer').textContent = client.peerId;
    view.label = label;
    $('identity').textContent = label;
    $('identity').dataset.operator = client.operator;
    $('chain-url').textContent = chain ? `(${new URL(chain).host})` : 'no chain given';
    $('request').disabled = !chain;
    $('connect').hidden = true;
    $('dashboard').hidden = false;
    renderGroups();
    renderDkg();
    renderEntries();
  } catch (err) {
    setStatus('not connected', 'failed');
    const why = err instanceof WalletRejectedError
      ? 'The wallet declined the signature. Nothing was sent; pick an identity to try again.'
      : `Could not connect: ${err.message}`;
    showError(why);
    log(String(err?.stack ?? err));
  } finally {
    setChoicesEnabled(true);
  }
}

// ---- events ------------------------------------------------------------------------------

function wire(node) {
  node.addEventListener('event', ({ detail }) =>
    log(JSON.stringify(detail, (_key, value) => (typeof value === 'bigint' ? String(value) : value))));
  node.addEventListener('status', ({ detail }) => {
    if (detail.state === 'connected') setStatus('connected', 'connected');
    else setStatus('no relay reachable — retrying', 'offline');
  });
  node.addEventListener('health', ({ detail }) => {
    const transports = Object.entries(detail.transports ?? {})
      .map(([name, n]) => (n > 1 ? `${n} × ${name}` : name)).join(', ');
    $('relays').textContent = `${detail.relays} of ${detail.target}${transports ? ` · ${transports}` : ''}`
      + (detail.state === 'healthy' ? '' : ` (${detail.state})`);
  });
  node.addEventListener('dialFailed', ({ detail }) => {
    if (node.status.relays === 0) setStatus(`no relay reachable — retry in ${Math.ceil(detail.retryInMs / 1000)} s`, 'offline');
  });
  node.addEventListener('peer', ({ detail }) => {
    if (detail.connected) view.peers.add(detail.peer);
    else view.peers.delete(detail.peer);
    $('peers').textContent = `${view.peers.size} connected`;
  });
  // Each relay answers the wallet's delegation once per connection.
  node.addEventListener('attestationAcknowledged', ({ detail }) => {
    view.verdicts.set(detail.peer, detail.accepted ? 'accepted' : detail.reason);
    $('identity').dataset.relayVerdict = detail.accepted ? 'accepted' : detail.reason;
    const accepted = [...view.verdicts.values()].filter((v) => v === 'accepted').length;
    const refused = [...view.verdicts.values()].filter((v) => v !== 'accepted');
    $('identity').textContent = `${view.label}${accepted ? ` · accepted by ${accepted} relay${accepted > 1 ? 's' : ''}` : ''}`
      + (refused.length ? ` · refused (${refused.join(', ')})` : '');
  });
  node.addEventListener('block', ({ detail }) => {
    $('block').textContent = `block ${detail.number}`;
    view.blocks.push([performance.now(), detail.number]);
    if (view.blocks.length > 20) view.blocks.shift();
  });
  node.addEventListener('error', ({ detail }) => {
    if (detail.source === 'chain') showError(`The chain is not answering (${detail.error}); retrying.`, { notice: true });
    else showError(`The node stopped: ${detail.error}. Reload the page to start again.`);
  });
  node.addEventListener('chainBack', () => clearError());
  node.addEventListener('group', ({ detail }) => {
    view.groups.set(detail.group, {
      seats: detail.seats, members: detail.operators.length, restored: detail.restored, rate: null,
    });
    renderGroups();
  });
  node.addEventListener('groupHealth', ({ detail }) => {
    const group = view.groups.get(detail.group);
    if (group) group.rate = detail.rate;
    renderGroups();
  });
  node.addEventListener('groupEnded', ({ detail }) => {
    view.groups.delete(detail.group);
    renderGroups();
  });
  node.addEventListener('dkg', ({ detail }) => {
    if (detail.event === 'dkgJoined') {
      view.dkg = { session: detail.session, seats: detail.seats, size: detail.size,
        startBlock: detail.startBlock, phase: null, finished: false };
    } else if (view.dkg?.session === detail.session) {
      if (detail.event === 'dkgPhase') view.dkg.phase = detail.phase;
      if (detail.event === 'dkgFinished') Object.assign(view.dkg, { finished: true, ok: detail.ok,
        error: detail.error, misbehaved: detail.misbehaved });
      if (detail.event === 'dkgTimedOut') Object.assign(view.dkg, { finished: true, ok: false, error: 'timed out' });
    }
    renderDkg();
  });
  node.addEventListener('groupEntry', ({ detail }) => {
    if (detail.signers.length) view.signers.set(detail.request, detail.signers);
    renderEntries();
  });
  node.addEventListener('shareTimes', ({ detail }) => {
    view.shareTimes.set(detail.request, detail.shares.map((share) => share.afterMs));
    renderEntries();
  });
  node.addEventListener('entry', ({ detail }) => {
    view.entries.set(detail.request, detail);
    renderEntries();
  });
}

// ---- rendering ---------------------------------------------------------------------------

function renderGroups() {
  const list = $('groups');
  list.replaceChildren();
  if (view.groups.size === 0) {
    list.append(el('li', { className: 'muted empty',
      textContent: 'Not in a group yet: the next selection may pick this tab.' }));
    return;
  }
  for (const [id, g] of view.groups) {
    const li = el('li', {}, el('strong', { textContent: `Group ${id}` }),
      ` · seat ${g.seats.join(', ')} of ${g.members}`);
    li.dataset.testid = 'group';
    li.dataset.group = id;
    if (g.restored) li.append(el('span', { className: 'badge', textContent: 'restored' }));
    if (g.rate !== null) {
      li.append(el('span', { className: `badge ${g.rate >= 0.5 ? 'ok' : 'bad'}`,
        textContent: `${Math.round(g.rate * 100)} % delivered` }));
    }
    list.append(li);
  }
}

function renderDkg() {
  const box = $('dkg');
  const dkg = view.dkg;
  if (!dkg) {
    box.className = 'muted';
    box.textContent = 'No DKG yet: when this tab is selected, its group generates a key here.';
    return;
  }
  box.className = '';
  const at = dkg.phase ? PHASES.indexOf(dkg.phase) : -1;
  const phases = el('div', { className: 'phases' });
  PHASE_NAMES.forEach((name, i) => {
    const done = dkg.finished ? dkg.ok : i < at;
    phases.append(el('span', { className: `phase ${done ? 'done' : i === at && !dkg.finished ? 'now' : ''}`,
      textContent: name }));
  });
  const state = !dkg.finished ? (at < 0 ? `waiting for block ${dkg.startBlock}` : `phase ${at + 1} of 7`)
    : dkg.ok ? 'finished: the group key is made' : `failed: ${dkg.error}`;
  box.replaceChildren(
    el('div', { className: 'muted', textContent: `Latest DKG · session ${short(dkg.session, 4)}` }),
    el('div', { textContent: `Seat ${dkg.seats.join(', ')} of ${dkg.size} · ${state}` }),
    phases,
  );
  box.dataset.state = dkg.finished ? (dkg.ok ? 'finished' : 'failed') : 'running';
  if (dkg.misbehaved?.length) box.append(el('div', { className: 'muted', textContent: `Misbehaved seats: ${dkg.misbehaved.join(', ')}` }));
}

/** The chain's block time as this tab saw it (ms), from the last block events. */
function blockMs() {
  const b = view.blocks;
  if (b.length < 2) return null;
  const [[t0, n0], [t1, n1]] = [b[0], b[b.length - 1]];
  return n1 > n0 ? (t1 - t0) / (n1 - n0) : null;
}

let chart;

function renderEntries() {
  const list = $('entries');
  const entries = [...view.entries.values()].sort((a, b) => b.request - a.request);
  list.replaceChildren(...entries.slice(0, 50).map((e) => {
    const signers = view.signers.get(e.request);
    const li = el('li', {},
      el('code', { className: 'random', textContent: short(e.random, 16), title: e.random }),
      el('span', { className: `badge ${e.verified ? 'ok' : 'bad'}`,
        textContent: e.verified ? 'verified in this tab' : 'NOT verified' }),
      el('div', { className: 'meta', textContent:
        `block ${e.entryBlock} · group ${e.group} (${e.groupMembers.length} members) · `
        + `${e.entryBlock - e.requestBlock} blocks after the request`
        + (signers ? ` · signed by seats ${signers.join(', ')}` : '') }));
    li.dataset.testid = 'entry';
    li.dataset.verified = String(e.verified);
    li.dataset.random = e.random;
    li.dataset.request = String(e.request);
    return li;
  }));
  if (entries.length === 0) {
    list.append(el('li', { className: 'muted', textContent: 'No entry yet.' }));
  }
  plot(entries.slice().reverse());
}

/** The median of `values` (null when empty). */
function median(values) {
  if (!values?.length) return null;
  const sorted = values.slice().sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Entry times (request block to entry block) on the left axis; on the right, the group-message
 * latency of the rounds this tab signed in: when the other members' shares reached it, median
 * and slowest, in ms after its own share.
 */
function plot(entries) {
  const ms = blockMs() ?? 1000;
  const shares = entries.map((e) => view.shareTimes.get(e.request));
  const data = [
    entries.map((e) => e.entryBlock),
    entries.map((e) => (e.entryBlock - e.requestBlock) * ms),
    shares.map(median),
    shares.map((times) => (times?.length ? Math.max(...times) : null)),
  ];
  const box = $('chart');
  if (!chart) {
    const points = { size: 6 };
    chart = new uPlot({
      width: Math.max(300, box.clientWidth || 600), height: 200,
      scales: { x: { time: false }, latency: { auto: true } },
      axes: [{ label: 'entry block', incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] },
        { label: 'ms to entry', size: 60 },
        { label: 'share latency, ms', scale: 'latency', side: 1, size: 60, grid: { show: false } }],
      series: [{ label: 'block' },
        { label: 'entry time', stroke: '#4b5bdc', width: 2, points },
        { label: 'shares, median', scale: 'latency', stroke: '#1f9d6b', width: 2, points, spanGaps: true },
        { label: 'slowest share', scale: 'latency', stroke: '#d98b1f', width: 1, dash: [4, 4], points, spanGaps: true }],
    }, data, box);
    new ResizeObserver(() => chart.setSize({ width: Math.max(300, box.clientWidth), height: 200 })).observe(box);
  } else {
    chart.setData(data);
  }
  box.dataset.shareRounds = String(shares.filter((times) => times?.length).length);
}

// ---- main --------------------------------------------------------------------------------

async function main() {
  $('member').disabled = !chain;
  if (!chain) $('member').checked = false;
  $('error-back').addEventListener('click', async () => {
    clearError();
    if (client) await client.stop().catch(() => {});
    client = undefined;
    $('dashboard').hidden = true;
    $('connect').hidden = false;
    setStatus('not connected');
  });
  if (!relays.length) {
    showError('This page needs relays: open it from `keep-light dev` (it prints the URL), or add ?relay=MULTIADDR.');
    setStatus('not connected', 'failed');
    $('connect').hidden = true;
    return;
  }
  // The module loads and warms up while the user picks an identity: the click then connects
  // in about 20 ms instead of 70 (a failed load is reported by connect).
  loadWasm().catch(() => {});
  $('dev-key').addEventListener('click', async () => start({ keyHex: await KeepLight.sessionKey() }, 'dev key'));
  $('keystore-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const file = $('keystore-file').files[0];
    if (!file) {
      showError('Choose a keystore file first.', { notice: true });
      return;
    }
    start({ keystore: file, password: $('keystore-password').value }, 'keystore');
  });
  $('request').addEventListener('click', async () => {
    const button = $('request');
    button.disabled = true;
    button.textContent = 'Waiting for the entry…';
    try {
      const entry = await client.requestEntry();
      log(`requested entry: ${entry.random}`);
    } catch (err) {
      showError(`The request failed: ${err.message}`, { notice: true });
    } finally {
      button.disabled = false;
      button.textContent = 'Request a random number';
    }
  });
  await listWallets();
}

main().catch((err) => {
  setStatus('error', 'failed');
  showError(String(err?.message ?? err));
  log(String(err?.stack ?? err));
});
