// Envelope signatures (wire v1, DESIGN.md section 4) in a second implementation, on viem's
// keccak256 and secp256k1, so the Rust one is checked against something it did not write.
//
//   node tools/envelope-vectors.mjs make         writes tests/vectors/envelope.json: envelopes
//                                                signed here, one per verification outcome
//   node tools/envelope-vectors.mjs check FILE   verifies envelopes signed elsewhere (tests/
//                                                envelope_vectors.rs writes FILE with Rust's
//                                                signatures); exits 1 on any disagreement
//
// Run from www/ (npm packages from www/package.json). The keys are fixed test keys (Anvil/Hardhat
// accounts 0 and 1).
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { concat, hexToBytes, keccak256, numberToBytes, recoverAddress, stringToBytes, toHex } from 'viem';
import { privateKeyToAccount, sign } from 'viem/accounts';

const DOMAIN = stringToBytes('keep-light/envelope/1');
// The order of secp256k1's group: s above half of it is the high form.
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

const u32 = (n) => numberToBytes(n, { size: 4 });
const withLength = (bytes) => concat([u32(bytes.length), bytes]);

/** The hash an author signs: see src/wire/signature.rs. */
export function signingHash(topic, { type, group, sequence, sender, payload }) {
  return keccak256(concat([
    DOMAIN,
    withLength(stringToBytes(topic)),
    withLength(stringToBytes(type)),
    withLength(hexToBytes(group)),
    numberToBytes(BigInt(sequence), { size: 8 }),
    hexToBytes(sender),
    hexToBytes(keccak256(hexToBytes(payload))),
  ]));
}

/** null when `envelope`'s signature holds for `topic`, else the reason it does not. */
export async function verify(topic, envelope) {
  const signature = hexToBytes(envelope.signature);
  if (signature.length !== 65) return 'length';
  const v = signature[64];
  if (v !== 0 && v !== 1) return 'recovery_byte';
  const s = BigInt(toHex(signature.slice(32, 64)));
  if (s > N / 2n) return 'high_s';
  let signer;
  try {
    signer = await recoverAddress({ hash: signingHash(topic, envelope), signature: toHex(signature) });
  } catch {
    return 'no_key';
  }
  return signer.toLowerCase() === envelope.sender.toLowerCase() ? null : 'wrong_signer';
}

async function signed(privateKey, topic, fields) {
  const sender = privateKeyToAccount(privateKey).address;
  const envelope = { ...fields, sender };
  const { r, s, yParity } = await sign({ hash: signingHash(topic, envelope), privateKey, to: 'object' });
  envelope.signature = concat([r, s, toHex(yParity, { size: 1 })]);
  return envelope;
}

async function make() {
  const alice = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
  const bob = '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d';
  const topic = 'keep-light/group/00/1';
  const base = { type: 'beacon.signing.Share', payload: '0x0a0b0c', group: '0x0102', sequence: '1764770000000001' };
  const good = await signed(alice, topic, base);
  const cases = [];
  const add = (name, envelope, expect, onTopic = topic) => cases.push({ name, topic: onTopic, envelope, expect });
  add('valid', good, { valid: true, hash: signingHash(topic, good) });
  add('valid_empty_fields', await signed(alice, topic, { type: '', payload: '0x', group: '0x', sequence: '0' }), { valid: true });
  add('valid_max_sequence', await signed(bob, topic, { ...base, sequence: '18446744073709551615' }), { valid: true });
  add('other_topic', good, { reason: 'bad_signature' }, 'keep-light/group/01/1');
  add('altered_payload', { ...good, payload: '0x0a0b0d' }, { reason: 'bad_signature' });
  add('altered_sequence', { ...good, sequence: '1764770000000002' }, { reason: 'bad_signature' });
  add('altered_group', { ...good, group: '0x0103' }, { reason: 'bad_signature' });
  add('altered_type', { ...good, type: 'beacon.signing.Shares' }, { reason: 'bad_signature' });
  const byBob = await signed(bob, topic, base);
  add('signed_by_another_key', { ...byBob, sender: good.sender }, { reason: 'bad_signature' });
  const bytes = hexToBytes(good.signature);
  const flipped = bytes.slice();
  flipped[10] ^= 0x01;
  add('bit_flipped_signature', { ...good, signature: toHex(flipped) }, { reason: 'bad_signature' });
  // The other valid ECDSA form of the same signature: s → n − s, v flipped.
  const high = bytes.slice();
  high.set(numberToBytes(N - BigInt(toHex(bytes.slice(32, 64))), { size: 32 }), 32);
  high[64] ^= 1;
  add('high_s', { ...good, signature: toHex(high) }, { reason: 'bad_signature' });
  const v27 = bytes.slice();
  v27[64] += 27;
  add('v_27_or_28', { ...good, signature: toHex(v27) }, { reason: 'bad_signature' });
  add('short_signature', { ...good, signature: toHex(bytes.slice(0, 64)) }, { reason: 'bad_signature' });
  add('no_signature', { ...good, signature: '0x' }, { reason: 'bad_signature' });
  for (const c of cases) {
    const reason = await verify(c.topic, c.envelope);
    if ((reason === null) !== Boolean(c.expect.valid)) throw new Error(`${c.name}: this implementation says ${reason}`);
  }
  const out = join(dirname(fileURLToPath(import.meta.url)), '../../tests/vectors/envelope.json');
  const file = { generated_by: 'www/tools/envelope-vectors.mjs make, with viem (keccak256, sign)', cases };
  writeFileSync(out, JSON.stringify(file, null, 1) + '\n');
  console.log(`wrote ${cases.length} cases to ${out}`);
}

async function check(path) {
  const { cases } = JSON.parse(readFileSync(path, 'utf8'));
  let wrong = 0;
  for (const c of cases) {
    const hash = signingHash(c.topic, c.envelope);
    const reason = await verify(c.topic, c.envelope);
    const valid = reason === null;
    if (valid !== c.expect.valid || (c.expect.hash && c.expect.hash !== hash)) {
      console.error(`${c.name}: expected ${JSON.stringify(c.expect)}, got valid=${valid} (${reason}) hash=${hash}`);
      wrong += 1;
    }
  }
  console.log(JSON.stringify({ checked: cases.length, wrong }));
  process.exit(wrong === 0 ? 0 : 1);
}

// A command when run, a module (signingHash, verify) when imported.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [mode, path] = process.argv.slice(2);
  if (mode === 'make') await make();
  else if (mode === 'check' && path) await check(path);
  else {
    console.error('usage: node tools/envelope-vectors.mjs make | check FILE');
    process.exit(2);
  }
}
