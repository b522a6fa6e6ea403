// Writes tests/vectors/siwe.json: EIP-4361 (Sign-In with Ethereum) attestations built and signed by
// viem (createSiweMessage, account.signMessage), one per verification outcome. tests/attestation.rs
// checks that keep-light accepts the good ones and refuses each bad one for its stated reason.
//
// Run from www/: node tools/make-siwe.mjs   (npm packages from www/package.json)
// The wallet is a fixed test key (Anvil/Hardhat account 0); the session peer IDs are those of the
// secp256k1 secrets 0x…02 and 0x…03 (`keep-light id --key-hex`), recorded below so the Rust test
// can re-derive and compare them.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createSiweMessage } from 'viem/siwe';
import { privateKeyToAccount } from 'viem/accounts';

const out = join(dirname(fileURLToPath(import.meta.url)), '../../tests/vectors/siwe.json');
const wallet = privateKeyToAccount('0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80');
const session = { secret: '0x' + '0'.repeat(63) + '2', peer: '16Uiu2HAm8kegYGp6XeybmZAuNcnLosyjsRwZ44yLgfEuqLqYL9zt' };
const other = { secret: '0x' + '0'.repeat(63) + '3', peer: '16Uiu2HAmCCQRbp36trRMKRjqhRv1GAD7i1Epty3q2LiutAYCJ1oN' };
const now = new Date('2026-06-01T12:00:00.000Z');
const hour = 3600 * 1000;

function message(overrides = {}) {
  return createSiweMessage({
    address: wallet.address,
    chainId: 1,
    domain: 'keep-light.example',
    uri: 'https://keep-light.example/',
    version: '1',
    nonce: 'keeplight0001',
    statement: 'Delegate my keep-light operator identity to this browser session key.',
    issuedAt: new Date(now.getTime() - hour),
    expirationTime: new Date(now.getTime() + hour),
    resources: [`urn:keep-light:peer:${session.peer}`],
    ...overrides,
  });
}

const sign = (text) => wallet.signMessage({ message: text });
const withV = (signature, v) => signature.slice(0, 130) + v.toString(16).padStart(2, '0');

const cases = [];
async function add(name, text, expect, { signature, chainId = 1, peer = session.peer } = {}) {
  cases.push({ name, message: text, signature: signature ?? (await sign(text)), chain_id: chainId, peer, expect });
}

const good = message();
const goodSignature = await sign(good);
await add('valid', good, { valid: true, operator: wallet.address, expires_at: '2026-06-01T13:00:00.000Z' });
await add('valid_v_0_or_1', good, { valid: true, operator: wallet.address },
  { signature: withV(goodSignature, parseInt(goodSignature.slice(130), 16) - 27) });
await add('valid_with_not_before', message({ notBefore: new Date(now.getTime() - 60000) }), { valid: true, operator: wallet.address });
await add('tampered_text', good.replace('keeplight0001', 'keeplight0002'), { reason: 'signer_mismatch' }, { signature: goodSignature });
await add('other_peer', message({ resources: [`urn:keep-light:peer:${other.peer}`] }), { reason: 'wrong_peer' });
await add('expired', message({ issuedAt: new Date(now.getTime() - 3 * hour), expirationTime: new Date(now.getTime() - hour) }), { reason: 'expired' });
await add('not_yet_valid', message({ notBefore: new Date(now.getTime() + 60000) }), { reason: 'not_yet_valid' });
await add('wrong_chain', message({ chainId: 5 }), { reason: 'wrong_chain' });
await add('bad_checksum', good.replace(wallet.address, wallet.address.toLowerCase()), { reason: 'bad_checksum' });
await add('malformed_signature', good, { reason: 'malformed_signature' }, { signature: '0x1234' });
await add('wrong_v', good, { reason: 'wrong_v' }, { signature: withV(goodSignature, 29) });
await add('signed_by_another_wallet', good, { reason: 'signer_mismatch' },
  { signature: await privateKeyToAccount('0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d').signMessage({ message: good }) });
await add('no_peer_resource', message({ resources: ['https://keep-light.example/other'] }), { reason: 'no_peer_resource' });
await add('no_expiration', message({ expirationTime: undefined }), { reason: 'no_expiration' });
await add('not_siwe', 'hello world', { reason: 'malformed' });

writeFileSync(out, JSON.stringify({
  generated_by: 'www/tools/make-siwe.mjs with viem (createSiweMessage, signMessage)',
  wallet: wallet.address,
  session,
  other,
  now: now.toISOString(),
  cases,
}, null, 1) + '\n');
console.error(`wrote ${cases.length} cases to ${out}`);
