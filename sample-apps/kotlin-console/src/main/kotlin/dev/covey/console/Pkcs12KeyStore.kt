package dev.covey.console

import dev.covey.platform.SecretKeyWrapping
import java.io.File
import java.security.KeyStore as JavaKeyStore
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey

/**
 * The console app's platform key store: AES-256 wrapping keys in a password-protected PKCS#12
 * file kept apart from the data directory (on a phone this is the Android Keystore or the iOS
 * Keychain; a desktop JVM has no hardware key store, so the password is the protection).
 */
class Pkcs12KeyStore(private val file: File, password: CharArray) : SecretKeyWrapping() {
    private val password = password.copyOf()
    private val keys: JavaKeyStore = JavaKeyStore.getInstance("PKCS12").apply {
        if (file.exists()) file.inputStream().use { load(it, this@Pkcs12KeyStore.password) } else load(null, null)
    }

    @Synchronized
    override fun secretKey(keyId: String, create: Boolean): SecretKey? {
        val alias = alias(keyId)
        (keys.getKey(alias, password) as SecretKey?)?.let { return it }
        if (!create) return null
        val key = KeyGenerator.getInstance("AES").apply { init(256) }.generateKey()
        keys.setEntry(alias, JavaKeyStore.SecretKeyEntry(key), JavaKeyStore.PasswordProtection(password))
        save()
        return key
    }

    @Synchronized
    override fun deleteSecretKey(keyId: String) {
        val alias = alias(keyId)
        if (keys.containsAlias(alias)) {
            keys.deleteEntry(alias)
            save()
        }
    }

    private fun save() {
        file.parentFile?.mkdirs()
        // Write then rename, so a crash never leaves a half-written key file behind.
        val tmp = File(file.path + ".tmp")
        tmp.outputStream().use { keys.store(it, password) }
        check(tmp.renameTo(file)) { "could not replace the key file" }
    }

    // PKCS#12 aliases are case-insensitive; the library's key ids are lower-case hex anyway.
    private fun alias(keyId: String) = "covey-" + keyId.lowercase()
}
