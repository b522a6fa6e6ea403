"""Live cross-check: py_ecc checks a simulated DKG's group key against the qualified members'
public key shares (Lagrange in the exponent, over two different sets of T shares) and verifies
the threshold-signed message under it.

Run: python3 tests/crosscheck/dkg_cli.py target/debug/examples/dkg
(scripts/test.sh runs it with the .venv made by scripts/install-tools.sh). Exits non-zero with a
message on the first disagreement.
"""

import json
import subprocess
import sys

from py_ecc import optimized_bn128 as bn

import bn254_ref as ref
from bls_cli import check, unhex


def lagrange_at_zero(points):
    """Σ λᵢ·Pᵢ with λᵢ = Π_{j≠i} j / (j − i) mod r: the polynomial's value at 0, in G2."""
    total = None
    for i, point in points:
        weight = 1
        for j, _ in points:
            if j != i:
                weight = weight * j * pow(j - i, -1, ref.R) % ref.R
        term = bn.multiply(point, weight)
        total = term if total is None else bn.add(total, term)
    return total


def main(binary):
    # 9 seats, T = 5; seat 2 sends seat 1 a bad share, seat 9 goes silent after phase 1.
    proc = subprocess.run([binary, "--members", "9", "--threshold", "5", "--cheating", "1", "--silent", "1", "--seed", "5"],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        sys.exit(f"dkg exited {proc.returncode}: {proc.stdout} {proc.stderr}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    check(out["disqualified"] == [2] and out["inactive"] == [9], f"misbehaved members named: {out['disqualified']}, {out['inactive']}")
    group_key = ref.g2_from_bytes(unhex(out["group_public_key"]))
    shares = [(s["index"], ref.g2_from_bytes(unhex(s["public_key"]))) for s in out["share_public_keys"]]
    t = out["threshold"]
    check(len(shares) >= t + 1, f"{len(shares)} public key shares for T = {t}")
    check(bn.eq(lagrange_at_zero(shares[:t]), group_key), "the first T public key shares interpolate to the group key")
    check(bn.eq(lagrange_at_zero(shares[-t:]), group_key), "the last T public key shares interpolate to it too")
    message = unhex(out["message"])
    signature = ref.g1_from_bytes(unhex(out["signature"]))
    check(ref.verify(group_key, message, signature), "py_ecc's pairing accepts the threshold signature")
    check(not ref.verify(group_key, message + b"!", signature), "and rejects it for another message")


if __name__ == "__main__":
    main(sys.argv[1])
