package dev.covey.rewards.android

import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyProperties
import dev.covey.platform.SecretKeyWrapping
import java.security.KeyStore as JavaKeyStore
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey

/**
 * Covey's data key wrapped by an AES-256-GCM key that lives in the Android Keystore (hardware
 * backed where the phone has a TEE or StrongBox): the key material never enters the app's
 * memory, and uninstalling the app or erasing in the privacy center destroys it.
 *
 * The wrap/unwrap format is [SecretKeyWrapping]'s, shared with the JVM console and tested on
 * the JVM; only where the key lives is Android-specific.
 */
class AndroidKeystoreKeyStore : SecretKeyWrapping() {
    private val keystore: JavaKeyStore = JavaKeyStore.getInstance(PROVIDER).apply { load(null) }

    @Synchronized
    override fun secretKey(keyId: String, create: Boolean): SecretKey? {
        val alias = alias(keyId)
        (keystore.getKey(alias, null) as SecretKey?)?.let { return it }
        if (!create) return null
        val spec = KeyGenParameterSpec.Builder(alias, KeyProperties.PURPOSE_ENCRYPT or KeyProperties.PURPOSE_DECRYPT)
            .setBlockModes(KeyProperties.BLOCK_MODE_GCM)
            .setEncryptionPaddings(KeyProperties.ENCRYPTION_PADDING_NONE)
            .setKeySize(256)
            // The Keystore chooses every nonce; SecretKeyWrapping stores it with the ciphertext.
            .setRandomizedEncryptionRequired(true)
            .build()
        return KeyGenerator.getInstance(KeyProperties.KEY_ALGORITHM_AES, PROVIDER).run {
            init(spec)
            generateKey()
        }
    }

    @Synchronized
    override fun deleteSecretKey(keyId: String) {
        val alias = alias(keyId)
        if (keystore.containsAlias(alias)) keystore.deleteEntry(alias)
    }

    private fun alias(keyId: String) = "covey-$keyId"

    private companion object {
        const val PROVIDER = "AndroidKeyStore"
    }
}
