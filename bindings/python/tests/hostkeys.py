"""A host key store written in Python, the way an app implements the `KeyStore` foreign trait.

Phones wrap the data key with the Keychain or the Android Keystore; here each key id gets a
random 256-bit wrapping key kept in memory, and wrapping is an encrypt-then-MAC construction
from the standard library (SHA-256 keystream, HMAC-SHA256 tag) so that a wrong key or a
flipped byte is detected, as a platform AEAD would.
"""

import hashlib
import hmac
import os
import threading

import covey

NONCE_LEN = 16
TAG_LEN = 32


def _keystream(key: bytes, nonce: bytes, length: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(key + nonce + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:length])


class MemoryKeyStore(covey.KeyStore):
    """Wrapping keys per key id, in memory; `destroy_key` forgets them."""

    def __init__(self):
        self._keys = {}
        self._lock = threading.Lock()
        self.destroyed = []

    def _key(self, key_id, create):
        with self._lock:
            if key_id not in self._keys:
                if not create:
                    raise covey.KeyStoreError.KeyNotFound()
                self._keys[key_id] = os.urandom(32)
            return self._keys[key_id]

    def wrap_key(self, key_id, key):
        kek = self._key(key_id, create=True)
        nonce = os.urandom(NONCE_LEN)
        body = bytes(a ^ b for a, b in zip(key, _keystream(kek, nonce, len(key))))
        tag = hmac.new(kek, key_id.encode() + nonce + body, hashlib.sha256).digest()
        return nonce + body + tag

    def unwrap_key(self, key_id, wrapped):
        kek = self._key(key_id, create=False)
        nonce, body, tag = wrapped[:NONCE_LEN], wrapped[NONCE_LEN:-TAG_LEN], wrapped[-TAG_LEN:]
        expected = hmac.new(kek, key_id.encode() + nonce + body, hashlib.sha256).digest()
        if len(wrapped) < NONCE_LEN + TAG_LEN or not hmac.compare_digest(tag, expected):
            raise covey.KeyStoreError.WrongKey()
        return bytes(a ^ b for a, b in zip(body, _keystream(kek, nonce, len(body))))

    def destroy_key(self, key_id):
        with self._lock:
            self._keys.pop(key_id, None)
            self.destroyed.append(key_id)


class BrokenKeyStore(covey.KeyStore):
    """A host key store whose platform calls fail: locked device, buggy host code."""

    def __init__(self, error):
        self.error = error

    def wrap_key(self, key_id, key):
        raise self.error

    def unwrap_key(self, key_id, wrapped):
        raise self.error

    def destroy_key(self, key_id):
        raise self.error
