// Starts the keep-light binary (KEEP_LIGHT_BIN, set by scripts/test.sh) for the page tests and
// reads its JSON lines; relays of a test's own; a TCP proxy a test can cut.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { createHash } from 'node:crypto';
import net from 'node:net';

/**
 * Starts the binary with `args` (or `program`, e.g. an example's binary); with `stdin` the
 * child's stdin is a pipe the test writes commands to (`child.stdin`).
 * @returns {{child: import('node:child_process').ChildProcess,
 *            next: (pick: (line: object) => boolean, what: string) => Promise<object>}}
 *   `next` resolves with the first stdout line (seen already or to come) that `pick` accepts,
 *   and rejects after 30 s naming `what`.
 */
export function startBinary(args, { program = process.env.KEEP_LIGHT_BIN, stdin = false } = {}) {
  const child = spawn(program, args, { stdio: [stdin ? 'pipe' : 'ignore', 'pipe', 'ignore'] });
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

/**
 * Starts a relay of its own on loopback (WebSocket, TCP, WebRTC-direct) with `extra` arguments.
 * @returns {Promise<{child, next, ws: string, tcp: string, 'webrtc-direct': string, peer: string}>}
 */
export async function startRelay(extra = []) {
  const relay = startBinary(['relay', '--listen', '/ip4/127.0.0.1/tcp/0/ws', '--listen', '/ip4/127.0.0.1/tcp/0',
    '--listen', '/ip4/127.0.0.1/udp/0/webrtc-direct', ...extra]);
  const listening = (pick, what) => relay.next((v) => pick(v.listening ?? ''), what).then((v) => v.listening);
  const ws = await listening((a) => a.includes('/ws/p2p/'), 'a ws address');
  const tcp = await listening((a) => /\/tcp\/\d+\/p2p\//.test(a), 'a tcp address');
  const webrtc = await listening((a) => a.includes('/webrtc-direct/'), 'a webrtc-direct address');
  return { ...relay, ws, tcp, 'webrtc-direct': webrtc, peer: ws.split('/p2p/')[1] };
}

/**
 * Answers a WebSocket handshake, then sends what no libp2p dialer accepts (a bad
 * multistream-select header), so the dial fails at once. (Closing the socket instead is
 * noticed by a tab only at libp2p's 10 s upgrade timeout: libp2p-websocket-websys wakes no
 * reader when its socket closes.)
 */
function refuse(socket) {
  let head = '';
  socket.on('data', (chunk) => {
    if (socket.refused) return;
    head += chunk.toString('latin1');
    if (!head.includes('\r\n\r\n')) return;
    socket.refused = true;
    const key = /sec-websocket-key:\s*(\S+)/i.exec(head)?.[1];
    if (!key) {
      socket.destroy();
      return;
    }
    const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${accept}\r\n\r\n`);
    const garbage = Buffer.from('\x11/not-multistream\n', 'latin1');
    socket.write(Buffer.concat([Buffer.from([0x82, garbage.length]), garbage]));
    setTimeout(() => socket.destroy(), 2_000).unref();
  });
}

/**
 * A TCP proxy on loopback to the WebSocket listener at `port`, which the test can cut: while
 * `down`, it drops the connections it has and refuses each new WebSocket (`refuse`: the
 * dial fails at once). `attempts` counts the connections it was offered. Stop it with
 * `close()`. With `port` null it leads nowhere: keep it down (a decoy that counts dials).
 * @returns {Promise<{port: number, attempts: () => number, down: () => void, up: () => void,
 *                    close: () => void}>}
 */
export async function startProxy(port) {
  const sockets = new Set();
  let attempts = 0;
  let up = true;
  const server = net.createServer((client) => {
    attempts += 1;
    client.on('error', () => {});
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    if (!up) {
      refuse(client);
      return;
    }
    const relay = net.connect(port, '127.0.0.1');
    relay.on('error', () => client.destroy());
    client.on('close', () => relay.destroy());
    relay.on('close', () => client.destroy());
    client.pipe(relay).pipe(client);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    attempts: () => attempts,
    down: () => {
      up = false;
      for (const socket of sockets) socket.destroy();
    },
    up: () => { up = true; },
    close: () => {
      up = false;
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}
