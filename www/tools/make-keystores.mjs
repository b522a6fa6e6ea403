// Writes tests/vectors/keystores/: Ethereum V3 keystores made by real wallet libraries, and
// index.json naming each file's password, address and secret. tests/keystore_vectors.rs checks
// that keep-light decrypts every one of them (and refuses wrong passwords).
//
// Run from www/: node tools/make-keystores.mjs   (npm packages from www/package.json)
// - ethers 6 writes scrypt keystores (its only KDF for writing); it NFKC-normalises the password,
//   which one password here exercises (ligature ﬁ, full-width ｗ);
// - @ethereumjs/wallet 10 writes pbkdf2-hmac-sha256 (and scrypt) keystores.
// Secrets and passwords are fixed test values, so the files are reproducible in content (salts
// and IVs are random: a re-run changes the bytes, not what they decrypt to).
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Wallet as EthersWallet, encryptKeystoreJson } from 'ethers';
import { Wallet as EthjsWallet } from '@ethereumjs/wallet';

const out = join(dirname(fileURLToPath(import.meta.url)), '../../tests/vectors/keystores');
mkdirSync(out, { recursive: true });

const secret = (n) => '0x' + n.toString(16).padStart(2, '0').repeat(32);
const hexToBytes = (hex) => Uint8Array.from(Buffer.from(hex.slice(2), 'hex'));

const cases = [
  // geth's default ("standard") scrypt parameters: n = 2^18, r = 8, p = 1.
  { file: 'ethers-scrypt-geth-default.json', maker: 'ethers', kdf: 'scrypt', n: 262144, secret: secret(0x11), password: 'correct horse battery staple' },
  // geth's "light" parameters, fast enough for every test run.
  { file: 'ethers-scrypt-light.json', maker: 'ethers', kdf: 'scrypt', n: 4096, secret: secret(0x22), password: 'pässwörd ✓ ﬁ ｗ' },
  { file: 'ethereumjs-pbkdf2.json', maker: '@ethereumjs/wallet', kdf: 'pbkdf2', c: 262144, secret: secret(0x33), password: 'pbkdf2 password' },
  { file: 'ethereumjs-pbkdf2-light.json', maker: '@ethereumjs/wallet', kdf: 'pbkdf2', c: 1024, secret: secret(0x44), password: '' },
  { file: 'ethereumjs-scrypt-light.json', maker: '@ethereumjs/wallet', kdf: 'scrypt', n: 8192, secret: secret(0x55), password: 'x' },
];

const index = [];
for (const c of cases) {
  let json;
  if (c.maker === 'ethers') {
    const wallet = new EthersWallet(c.secret);
    json = await encryptKeystoreJson(
      { address: wallet.address, privateKey: c.secret }, c.password, { scrypt: { N: c.n, r: 8, p: 1 } });
  } else {
    const wallet = EthjsWallet.fromPrivateKey(hexToBytes(c.secret));
    const opts = c.kdf === 'pbkdf2' ? { kdf: 'pbkdf2', c: c.c } : { kdf: 'scrypt', n: c.n };
    json = JSON.stringify(await wallet.toV3(c.password, opts));
  }
  writeFileSync(join(out, c.file), json + '\n');
  const address = new EthersWallet(c.secret).address;
  index.push({ file: c.file, maker: c.maker, kdf: c.kdf, password: c.password, address, secret: c.secret });
  console.error(`wrote ${c.file}`);
}
writeFileSync(join(out, 'index.json'), JSON.stringify(index, null, 1) + '\n');
