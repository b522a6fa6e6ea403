// A dApp's use of every export of the keep-light package, for `npm run typecheck`
// (tsc --noEmit --strict): it must compile against keep-light.d.ts, never run.
import {
  ChainError, CrashError, KeepLight, KeepLightError, NoRelayError, QueueFullError,
  WalletRejectedError, loadWasm, warmUp, type Entry, type KeepLightEvent,
} from 'keep-light';

export async function beacon(relay: string, rpc: string): Promise<Entry> {
  await loadWasm();
  const warmed: boolean = await warmUp();
  if (!warmed) console.debug('the first connect compiles its code');
  const [wallet] = await KeepLight.wallets({ waitMs: 100 });
  let client: KeepLight;
  try {
    client = await KeepLight.connect({
      bootstrap: [relay],
      chain: rpc,
      identity: wallet ? { wallet: wallet.provider } : { keyHex: await KeepLight.sessionKey() },
      member: true,
    });
  } catch (err) {
    if (err instanceof WalletRejectedError || err instanceof NoRelayError || err instanceof ChainError) {
      throw new KeepLightError(`cannot connect (${err.code}): ${err.message}`);
    }
    throw err;
  }
  client.addEventListener('entry', (e) => console.log(e.detail.random, e.detail.verified, e.detail.entryBlock));
  client.addEventListener('status', (e) => console.log(e.detail.state, e.detail.relays));
  client.addEventListener('dkg', (e) => {
    if (e.detail.event === 'dkgPhase') console.log(e.detail.phase);
  });
  client.addEventListener('group', (e) => console.log(e.detail.groupKey, e.detail.seats));
  client.addEventListener('shareTimes', (e) => console.log(e.detail.shares.map((s) => s.afterMs)));
  const channel = await client.joinGroup([client.operator], (m) => console.log(m.sender, m.text));
  channel.send('hello');
  channel.close();
  console.log(client.peerId, client.status.relays, KeepLight.verifierStats().workers, await KeepLight.memoryBytes());
  const iterate = async () => {
    for await (const event of client.events() as AsyncIterable<KeepLightEvent>) {
      if (event.event === 'entry') break;
    }
  };
  void iterate();
  try {
    return await client.requestEntry();
  } catch (err) {
    if (err instanceof QueueFullError || err instanceof CrashError) console.log(err.code);
    throw err;
  } finally {
    await client.stop();
  }
}

export async function keystore(json: string, password: string): Promise<string> {
  const key = await KeepLight.decryptKeystore(json, password);
  const attestation = await KeepLight.requestAttestation({ request: async () => null }, { sessionKey: key.secret });
  return `${key.address} ${key.peerId} ${attestation.signature}`;
}
