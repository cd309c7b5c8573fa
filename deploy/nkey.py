"""NKeys (https://docs.nats.io/running-a-nats-service/nats_admin/security/jwt#nkeys) made with
the standard library, for install.py: an Ed25519 key pair (RFC 8032's reference arithmetic)
written as NATS writes it, base32 of a prefix byte, the key and a CRC16 (XMODEM,
little-endian). The bridge's auth callout signs with the account seed; the NATS server trusts
the public key. A module of its own so that install.py reads as the install steps."""

import base64
import hashlib

_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P


def _ed25519_add(a, b):
    x = (a[1] - a[0]) * (b[1] - b[0]) % _P
    y = (a[1] + a[0]) * (b[1] + b[0]) % _P
    c = 2 * a[3] * b[3] * _D % _P
    d = 2 * a[2] * b[2] % _P
    e, f, g, h = y - x, d - c, d + c, y + x
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _ed25519_public(seed):
    """The public key of the 32-byte Ed25519 `seed` (RFC 8032, 5.1.5)."""
    digest = hashlib.sha512(seed).digest()
    scalar = (int.from_bytes(digest[:32], "little") & ((1 << 254) - 8)) | (1 << 254)
    gy = 4 * pow(5, _P - 2, _P) % _P
    x2 = (gy * gy - 1) * pow(_D * gy * gy + 1, _P - 2, _P) % _P
    gx = pow(x2, (_P + 3) // 8, _P)
    if (gx * gx - x2) % _P:
        gx = gx * pow(2, (_P - 1) // 4, _P) % _P
    if gx & 1:
        gx = _P - gx
    point, result = (gx, gy, 1, gx * gy % _P), (0, 1, 1, 0)
    while scalar:
        if scalar & 1:
            result = _ed25519_add(result, point)
        point = _ed25519_add(point, point)
        scalar >>= 1
    zinv = pow(result[2], _P - 2, _P)
    x, y = result[0] * zinv % _P, result[1] * zinv % _P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _nkey_text(raw):
    crc = 0
    for byte in raw:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021 if crc & 0x8000 else crc << 1) & 0xFFFF
    return base64.b32encode(raw + crc.to_bytes(2, "little")).decode().rstrip("=")


def nkey_account_from_seed(seed):
    """(seed text `SA…`, public key `A…`) of the account key pair with Ed25519 seed `seed`."""
    account = 0  # the prefix byte of account keys; seeds carry it after their own (18 << 3)
    seed_text = _nkey_text(bytes([(18 << 3) | (account >> 5), (account & 31) << 3]) + seed)
    return seed_text, _nkey_text(bytes([account]) + _ed25519_public(seed))


def nkey_seed_bytes(seed_text):
    """The 32-byte Ed25519 seed of an NKey seed `S…` (what nkey_account_from_seed encodes)."""
    raw = base64.b32decode(seed_text.strip() + "=" * (-len(seed_text.strip()) % 8))
    return raw[2:34]
