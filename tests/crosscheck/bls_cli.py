"""Live cross-check: py_ecc verifies what `keep-light bls` produces, and `keep-light bls verify`
judges what py_ecc produces.

Run: python3 tests/crosscheck/bls_cli.py target/debug/keep-light
(scripts/test.sh runs it with the .venv made by scripts/install-tools.sh). Exits non-zero with a
message on the first disagreement.
"""

import json
import secrets
import subprocess
import sys

from py_ecc import optimized_bn128 as bn

import bn254_ref as ref


def run(binary, *args, stdin=None, expect=0):
    proc = subprocess.run([binary, "bls", *args], input=stdin, capture_output=True, text=True, timeout=60)
    if proc.returncode != expect:
        sys.exit(f"`bls {' '.join(args)}` exited {proc.returncode}, expected {expect}: {proc.stdout} {proc.stderr}")
    lines = proc.stdout.strip().splitlines()
    if len(lines) != 1:
        sys.exit(f"`bls {args[0]}` printed {len(lines)} lines, expected one JSON line: {proc.stdout!r}")
    return json.loads(lines[0])


def unhex(text):
    assert text.startswith("0x"), text
    return bytes.fromhex(text[2:])


def check(condition, what):
    if not condition:
        sys.exit(f"cross-check failed: {what}")
    print(f"ok: {what}")


def main(binary):
    # 1. Our keys and signatures, verified by py_ecc's pairing.
    key = run(binary, "keygen")
    secret = int.from_bytes(unhex(key["secret"]), "big")
    public_key = ref.g2_from_bytes(unhex(key["public_key"]))
    check(bn.eq(public_key, bn.multiply(bn.G2, secret)), "keygen: public_key = secret·G2 in py_ecc")
    message = secrets.token_bytes(37)
    signature = ref.g1_from_bytes(unhex(run(binary, "sign", "--secret", key["secret"], "--message", "0x" + message.hex())["signature"]))
    check(ref.verify(public_key, message, signature), "sign: py_ecc pairing accepts our signature")
    check(not ref.verify(public_key, message + b"!", signature), "py_ecc rejects it for another message")

    # 2. py_ecc's signatures, judged by our verify.
    theirs = secrets.randbelow(ref.R - 1) + 1
    their_pk = ref.g2_bytes(bn.multiply(bn.G2, theirs))
    their_sig = ref.g1_bytes(bn.multiply(ref.hash_to_g1(message), theirs))
    ok = run(binary, "verify", "--public-key", "0x" + their_pk.hex(), "--message", "0x" + message.hex(),
             "--signature", "0x" + their_sig.hex())
    check(ok == {"valid": True}, "verify: accepts py_ecc's signature")
    other = ref.g1_bytes(bn.multiply(ref.hash_to_g1(message), theirs + 1))
    bad = run(binary, "verify", "--public-key", "0x" + their_pk.hex(), "--message", "0x" + message.hex(),
              "--signature", "0x" + other.hex(), expect=1)
    check(bad["valid"] is False and "does not verify" in bad["error"], "verify: rejects a signature by another key (exit 1)")

    # 3. A dealt group: shares signed by the CLI, combined by the CLI (with a bad share mixed in),
    #    and the group signature checked by py_ecc against the group key.
    dealing = run(binary, "deal", "--n", "5", "--t", "3")
    group_key = ref.g2_from_bytes(unhex(dealing["group_public_key"]))
    shares = dealing["shares"]
    check([s["index"] for s in shares] == [1, 2, 3, 4, 5], "deal: indices 1..5")
    for s in shares:
        pk = ref.g2_from_bytes(unhex(s["public_key"]))
        check(bn.eq(pk, bn.multiply(bn.G2, int.from_bytes(unhex(s["secret"]), "big"))), f"deal: share {s['index']} public key")
    # Shamir consistency in Fr: any 3 shares interpolate the same secret, whose G2 point is the group key.
    def interpolate(indices):
        total = 0
        for i in indices:
            num, den = 1, 1
            for j in indices:
                if j != i:
                    num, den = num * j % ref.R, den * (j - i) % ref.R
            total += int.from_bytes(unhex(shares[i - 1]["secret"]), "big") * num * pow(den, -1, ref.R)
        return total % ref.R
    group_secret = interpolate([1, 2, 3])
    check(group_secret == interpolate([2, 4, 5]), "deal: shares lie on one degree-2 polynomial")
    check(bn.eq(group_key, bn.multiply(bn.G2, group_secret)), "deal: group key = interpolated secret·G2")

    entry_message = secrets.token_bytes(64)
    signed = [
        {"index": s["index"], "public_key": s["public_key"],
         "signature": run(binary, "sign", "--secret", s["secret"], "--message", "0x" + entry_message.hex())["signature"]}
        for s in shares
    ]
    signed[1]["signature"] = signed[0]["signature"]  # member 2 sends member 1's share
    request = json.dumps({"message": "0x" + entry_message.hex(), "threshold": 3, "shares": signed})
    combined = run(binary, "combine", stdin=request)
    check([r["index"] for r in combined["rejected"]] == [2], "combine: member 2's wrong share rejected")
    check(ref.verify(group_key, entry_message, ref.g1_from_bytes(unhex(combined["signature"]))),
          "combine: py_ecc accepts the group signature")
    check(unhex(combined["signature"]) == ref.g1_bytes(bn.multiply(ref.hash_to_g1(entry_message), group_secret)),
          "combine: equals group_secret·H(m) computed by py_ecc")

    too_few = json.dumps({"message": "0x" + entry_message.hex(), "threshold": 3, "shares": signed[:3]})
    failed = run(binary, "combine", stdin=too_few, expect=1)
    check("2 valid shares, 3 needed" in failed["error"] and failed["rejected"][0]["index"] == 2,
          "combine: too few valid shares names the bad one (exit 1)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: bls_cli.py PATH/TO/keep-light")
    main(sys.argv[1])
