"""Writes tests/vectors/bls.json: known-answer vectors computed with py_ecc and bn254_ref.py only.
tests/bls_vectors.rs checks keep-light against them.

Run: python3 tests/crosscheck/bls_vectors.py > tests/vectors/bls.json
(needs py_ecc and pycryptodome; scripts/install-tools.sh puts them in .venv/).
Deterministic: every secret is derived from a label, so a re-run gives the same file.
"""

import hashlib
import json
import sys

from py_ecc import optimized_bn128 as bn

import bn254_ref as ref


def scalar(label: str) -> int:
    return int.from_bytes(hashlib.sha256(label.encode()).digest(), "big") % ref.R


def hx(data: bytes) -> str:
    return "0x" + data.hex()


def key_vectors():
    out = []
    for i, message in enumerate([b"", b"hello", bytes(range(64)), b"keep-light" * 20]):
        secret = scalar(f"key {i}")
        public_key = bn.multiply(bn.G2, secret)
        signature = bn.multiply(ref.hash_to_g1(message), secret)
        assert ref.verify(public_key, message, signature)
        out.append(
            {
                "secret": hx(ref.int32(secret)),
                "public_key": hx(ref.g2_bytes(public_key)),
                "public_key_compressed": hx(ref.g2_compressed(public_key)),
                "message": hx(message),
                "signature": hx(ref.g1_bytes(signature)),
                "signature_compressed": hx(ref.g1_compressed(signature)),
            }
        )
    return out


def hash_vectors():
    out = []
    for i in range(12):
        message = hashlib.sha256(f"message {i}".encode()).digest()[: i * 5]
        point = ref.hash_to_g1(message)
        assert bn.is_on_curve(point, bn.b)
        out.append({"message": hx(message), "point": hx(ref.g1_bytes(point))})
    return out


def threshold_vector(n=5, t=3):
    coefficients = [scalar(f"coefficient {k}") for k in range(t)]

    def f(x):
        return sum(c * pow(x, k, ref.R) for k, c in enumerate(coefficients)) % ref.R

    message = b"threshold message"
    h = ref.hash_to_g1(message)
    shares = []
    for index in range(1, n + 1):
        secret = f(index)
        shares.append(
            {
                "index": index,
                "secret": hx(ref.int32(secret)),
                "public_key": hx(ref.g2_bytes(bn.multiply(bn.G2, secret))),
                "signature": hx(ref.g1_bytes(bn.multiply(h, secret))),
            }
        )
    group_public_key = bn.multiply(bn.G2, coefficients[0])
    group_signature = bn.multiply(h, coefficients[0])
    assert ref.verify(group_public_key, message, group_signature)
    return {
        "n": n,
        "t": t,
        "message": hx(message),
        "group_public_key": hx(ref.g2_bytes(group_public_key)),
        "group_signature": hx(ref.g1_bytes(group_signature)),
        "shares": shares,
    }


def entry_vector():
    genesis = ref.hash_to_g1(b"keep-light genesis")
    secret = scalar("group")
    next_entry = bn.multiply(ref.hash_to_g1(ref.g1_bytes(genesis)), secret)
    operators = [
        {"address": hx(hashlib.sha256(f"operator {i}".encode()).digest()[:20]), "stake": 100 * (1 + i % 3)}
        for i in range(8)
    ]
    seed = ref.keccak256(ref.g1_bytes(genesis))
    tickets = []
    for op in operators:
        for index in range(1, op["stake"] // 100 + 1):
            address = bytes.fromhex(op["address"][2:])
            tickets.append((ref.ticket(seed, address, index), address, index))
    tickets.sort()
    return {
        "genesis": hx(ref.g1_bytes(genesis)),
        "genesis_random": hx(ref.keccak256(ref.g1_bytes(genesis))),
        "group_secret": hx(ref.int32(secret)),
        "next": hx(ref.g1_bytes(next_entry)),
        "next_random": hx(ref.keccak256(ref.g1_bytes(next_entry))),
        "selection": {
            "operators": operators,
            "min_stake": 100,
            "group_size": 5,
            "seats": [
                {"ticket": str(tk), "operator": hx(address), "virtual_staker": index}
                for tk, address, index in tickets[:5]
            ],
        },
    }


def invalid_vectors():
    """Encodings every decoder must refuse, with the reason keep-light reports."""
    sig = ref.g1_bytes(bn.multiply(bn.G1, 5))
    pk = ref.g2_bytes(bn.multiply(bn.G2, 5))
    x, y = (int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    out = [
        {"kind": "g1", "bytes": hx(sig[:32] + ref.int32((y + 1) % ref.P)), "reason": "not_on_curve"},
        {"kind": "g1", "bytes": hx(ref.int32(x + ref.P) + sig[32:]), "reason": "non_canonical"},
        {"kind": "g1", "bytes": hx(bytes(64)), "reason": "identity"},
        {"kind": "g1", "bytes": hx(sig[:63]), "reason": "wrong_length"},
        {"kind": "g2", "bytes": hx(pk[:127] + bytes([pk[127] ^ 1])), "reason": "not_on_curve"},
        {"kind": "g2", "bytes": hx(ref.int32(int.from_bytes(pk[:32], "big") + ref.P) + pk[32:]),
         "reason": "non_canonical"},
        {"kind": "g2", "bytes": hx(bytes(128)), "reason": "identity"},
        {"kind": "g2", "bytes": hx(pk + b"\x00"), "reason": "wrong_length"},
    ]
    # The x + p encodings above must fit in 32 bytes to be a non-canonical (not a length) case.
    assert all(len(bytes.fromhex(v["bytes"][2:])) in (63, 64, 128, 129) for v in out)
    return out


def main():
    vectors = {
        "generated_by": "tests/crosscheck/bls_vectors.py with py_ecc (optimized_bn128) and pycryptodome keccak",
        "keys": key_vectors(),
        "hash_to_g1": hash_vectors(),
        "threshold": threshold_vector(),
        "entry": entry_vector(),
        "invalid": invalid_vectors(),
    }
    json.dump(vectors, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
