package dev.covey.platform

import java.nio.ByteBuffer
import java.security.GeneralSecurityException
import javax.crypto.AEADBadTagException
import javax.crypto.Cipher
import javax.crypto.SecretKey
import javax.crypto.spec.GCMParameterSpec
import org.covey.KeyStore
import org.covey.KeyStoreException

/**
 * A Covey [KeyStore] that wraps the store's data key with AES-256-GCM under a platform
 * [SecretKey]: the Android Keystore on a phone (`AndroidKeystoreKeyStore` in the Android app),
 * a password-protected PKCS#12 file on the JVM console, an in-memory key in tests.
 *
 * Wrapped format (version 1): `[0x01][12-byte nonce][ciphertext + 16-byte tag]`, with the key
 * id as associated data so a wrapped key cannot be replayed under another id. The nonce comes
 * from the cipher provider (Android Keystore refuses caller-chosen nonces for its keys).
 */
abstract class SecretKeyWrapping : KeyStore {
    /** The platform key named [keyId]; created when [create] is true and it is missing. */
    protected abstract fun secretKey(keyId: String, create: Boolean): SecretKey?

    /** Deletes the platform key named [keyId]; nothing to do when there is none. */
    protected abstract fun deleteSecretKey(keyId: String)

    override fun wrapKey(keyId: String, key: ByteArray): ByteArray {
        val secret = secretKey(keyId, create = true) ?: throw KeyStoreException.KeyNotFound()
        val cipher = guarded { Cipher.getInstance(TRANSFORMATION).apply { init(Cipher.ENCRYPT_MODE, secret) } }
        cipher.updateAAD(keyId.toByteArray(Charsets.UTF_8))
        val sealed = guarded { cipher.doFinal(key) }
        val nonce = cipher.iv
        if (nonce.size != NONCE_BYTES) throw unavailable("unexpected nonce length from the cipher provider")
        return ByteBuffer.allocate(1 + NONCE_BYTES + sealed.size).put(VERSION).put(nonce).put(sealed).array()
    }

    override fun unwrapKey(keyId: String, wrapped: ByteArray): ByteArray {
        if (wrapped.size < 1 + NONCE_BYTES + TAG_BITS / 8 || wrapped[0] != VERSION) throw KeyStoreException.WrongKey()
        val secret = secretKey(keyId, create = false) ?: throw KeyStoreException.KeyNotFound()
        val spec = GCMParameterSpec(TAG_BITS, wrapped, 1, NONCE_BYTES)
        val cipher = guarded { Cipher.getInstance(TRANSFORMATION).apply { init(Cipher.DECRYPT_MODE, secret, spec) } }
        cipher.updateAAD(keyId.toByteArray(Charsets.UTF_8))
        return try {
            cipher.doFinal(wrapped, 1 + NONCE_BYTES, wrapped.size - 1 - NONCE_BYTES)
        } catch (e: AEADBadTagException) {
            throw KeyStoreException.WrongKey()
        } catch (e: GeneralSecurityException) {
            throw unavailable("the platform cipher failed (${e.javaClass.simpleName})")
        }
    }

    /** Crypto-shredding: once the platform key is gone no copy of the wrapped key opens.
     *  Idempotent, like the SDK's own key stores: erasing twice is not an error. */
    override fun destroyKey(keyId: String) {
        guarded { deleteSecretKey(keyId) }
    }

    private inline fun <T> guarded(block: () -> T): T =
        try {
            block()
        } catch (e: GeneralSecurityException) {
            // Only the exception class: platform messages can name key aliases and paths.
            throw unavailable("the platform cipher failed (${e.javaClass.simpleName})")
        }

    private fun unavailable(reason: String) = KeyStoreException.Unavailable(reason)

    private companion object {
        const val TRANSFORMATION = "AES/GCM/NoPadding"
        const val VERSION: Byte = 1
        const val NONCE_BYTES = 12
        const val TAG_BITS = 128
    }
}
