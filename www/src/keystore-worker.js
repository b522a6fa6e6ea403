// Decrypts one keystore off the main thread (see KeepLight.decryptKeystore): loads the same
// wasm module, runs the KDF, posts back {key} or {error}.
import init, { decryptKeystore } from '../pkg/keep_light.js';

const ready = init();

self.onmessage = async ({ data: { json, password } }) => {
  try {
    await ready;
    self.postMessage({ key: JSON.parse(decryptKeystore(json, password)) });
  } catch (err) {
    self.postMessage({ error: String(err?.message ?? err) });
  }
};
