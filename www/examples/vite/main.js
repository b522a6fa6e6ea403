// The smallest dApp: a Vite-built page that imports the keep-light package by name, connects to
// the relays and chain in its URL (?relay=…&chain=…, as `keep-light dev` serves it) with the
// page's session key, and asks for one random number. www/e2e/vite.test.mjs builds and opens it.
import { KeepLight } from 'keep-light';

const params = new URLSearchParams(location.search);
const show = (id, text) => { document.getElementById(id).textContent = text; };

try {
  const client = await KeepLight.connect({
    bootstrap: params.getAll('relay'),
    chain: params.get('chain'),
    identity: { keyHex: await KeepLight.sessionKey() },
  });
  show('state', 'connected; asking for a random number…');
  const entry = await client.requestEntry();
  show('random', entry.random);
  show('state', entry.verified ? 'verified in this tab' : 'NOT verified');
} catch (err) {
  show('state', `failed: ${err.code ?? ''} ${err.message}`);
}
