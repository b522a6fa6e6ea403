"""Reference BN254 pieces for cross-checking keep-light, built on py_ecc (the Ethereum
Foundation's reference implementation) and written from DESIGN.md section 5, not from our Rust.

- hash_to_g1: keep-core's G1HashToPoint with Python integers;
- EIP-197 encodings (G1 x||y, G2 x.im||x.re||y.im||y.re) and keep-core's compressed forms;
- verify: the pairing equation e(sig, G2) == e(H(m), pk) with py_ecc's pairing;
- keccak256 from pycryptodome, for relay entries and selection tickets.
"""

import hashlib

from Crypto.Hash import keccak
from py_ecc import optimized_bn128 as bn

P = bn.field_modulus
R = bn.curve_order


def keccak256(data: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()


def hash_to_g1(message: bytes):
    x = int.from_bytes(hashlib.sha256(message).digest(), "big") % P
    while True:
        rhs = (x * x * x + 3) % P
        y = pow(rhs, (P + 1) // 4, P)
        if y * y % P == rhs:
            return (bn.FQ(x), bn.FQ(y), bn.FQ(1))
        x += 1


def int32(value: int) -> bytes:
    return int(value).to_bytes(32, "big")


def g1_bytes(point) -> bytes:
    if bn.is_inf(point):
        return bytes(64)
    x, y = bn.normalize(point)
    return int32(x.n) + int32(y.n)


def g2_bytes(point) -> bytes:
    x, y = bn.normalize(point)
    # FQ2 coeffs are (re, im); EIP-197 puts the imaginary part first.
    return int32(x.coeffs[1]) + int32(x.coeffs[0]) + int32(y.coeffs[1]) + int32(y.coeffs[0])


def g1_compressed(point) -> bytes:
    x, y = bn.normalize(point)
    out = bytearray(int32(x.n))
    if y.n & 1:
        out[0] |= 0x80
    return bytes(out)


def g2_compressed(point) -> bytes:
    x, y = bn.normalize(point)
    out = bytearray(int32(x.coeffs[1]) + int32(x.coeffs[0]))
    if int(y.coeffs[1]) & 1:
        out[0] |= 0x80
    return bytes(out)


def g1_from_bytes(data: bytes):
    assert len(data) == 64
    x, y = int.from_bytes(data[:32], "big"), int.from_bytes(data[32:], "big")
    assert x < P and y < P, "non-canonical coordinate"
    point = (bn.FQ(x), bn.FQ(y), bn.FQ(1))
    assert bn.is_on_curve(point, bn.b), "G1 point off the curve"
    return point


def g2_from_bytes(data: bytes):
    assert len(data) == 128
    words = [int.from_bytes(data[i : i + 32], "big") for i in range(0, 128, 32)]
    assert all(w < P for w in words), "non-canonical coordinate"
    x = bn.FQ2([words[1], words[0]])
    y = bn.FQ2([words[3], words[2]])
    point = (x, y, bn.FQ2.one())
    assert bn.is_on_curve(point, bn.b2), "G2 point off the twist"
    assert bn.is_inf(bn.multiply(point, R)), "G2 point outside the subgroup"
    return point


def verify(public_key, message: bytes, signature) -> bool:
    return bn.pairing(bn.G2, signature) == bn.pairing(public_key, hash_to_g1(message))


def ticket(seed: bytes, address: bytes, index: int) -> int:
    digest = keccak256(seed + bytes(12) + address + int32(index))
    return int.from_bytes(digest[:8], "big")
