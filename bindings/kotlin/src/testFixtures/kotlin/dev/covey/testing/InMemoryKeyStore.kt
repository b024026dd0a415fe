package dev.covey.testing

import dev.covey.platform.SecretKeyWrapping
import java.util.concurrent.ConcurrentHashMap
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey

/**
 * The test's stand-in for a phone's hardware key store: AES-256 keys held by the test (never
 * by the library), so a test can "lose" or swap the key and watch the client refuse to open.
 */
class InMemoryKeyStore : SecretKeyWrapping() {
    private val keys = ConcurrentHashMap<String, SecretKey>()

    /** Calls that reached the host key store, by operation: proves the library asked it. */
    val calls: MutableList<String> = java.util.Collections.synchronizedList(mutableListOf())

    override fun secretKey(keyId: String, create: Boolean): SecretKey? {
        calls += if (create) "wrap" else "unwrap"
        return if (create) keys.computeIfAbsent(keyId) { newKey() } else keys[keyId]
    }

    override fun deleteSecretKey(keyId: String) {
        calls += "destroy"
        keys.remove(keyId)
    }

    /** How many platform keys exist now. */
    fun size(): Int = keys.size

    /** Replaces every key by a fresh one, as if the device's key store were reset. */
    fun rotateAllBehindTheLibrarysBack() {
        keys.replaceAll { _, _ -> newKey() }
    }

    private fun newKey(): SecretKey = KeyGenerator.getInstance("AES").apply { init(256) }.generateKey()
}
