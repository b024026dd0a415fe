package dev.covey

import dev.covey.testing.InMemoryKeyStore
import org.covey.KeyStoreException
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows

/** The host-side key wrapping (AES-256-GCM, versioned, key id bound) that phones reuse. */
class KeyWrappingTest {
    private val dataKey = ByteArray(32) { it.toByte() }

    @Test
    fun `a wrapped key opens under the same id and its bytes do not contain the key`() {
        val keys = InMemoryKeyStore()
        val wrapped = keys.wrapKey("k1", dataKey)
        assertEquals(1.toByte(), wrapped[0], "format version byte")
        assertEquals(1 + 12 + 32 + 16, wrapped.size)
        assertFalse(wrapped.toList().windowed(32).any { it.toByteArray().contentEquals(dataKey) })
        assertArrayEquals(dataKey, keys.unwrapKey("k1", wrapped))
        // Fresh nonce each time: wrapping twice never repeats the ciphertext.
        assertFalse(wrapped.contentEquals(keys.wrapKey("k1", dataKey)))
    }

    @Test
    fun `tampered, truncated, foreign-version or re-labelled wraps are refused as WrongKey`() {
        val keys = InMemoryKeyStore()
        val wrapped = keys.wrapKey("k1", dataKey)
        keys.wrapKey("k2", dataKey) // k2 exists, but the wrap is bound to k1
        val flipped = wrapped.copyOf().also { it[20] = (it[20].toInt() xor 1).toByte() }
        val otherVersion = wrapped.copyOf().also { it[0] = 2 }
        for (bad in listOf(flipped, wrapped.copyOf(20), otherVersion)) {
            assertThrows<KeyStoreException.WrongKey> { keys.unwrapKey("k1", bad) }
        }
        assertThrows<KeyStoreException.WrongKey> { keys.unwrapKey("k2", wrapped) }
    }

    @Test
    fun `a destroyed key is gone for good and destroying twice is fine`() {
        val keys = InMemoryKeyStore()
        val wrapped = keys.wrapKey("k1", dataKey)
        keys.destroyKey("k1")
        keys.destroyKey("k1")
        assertThrows<KeyStoreException.KeyNotFound> { keys.unwrapKey("k1", wrapped) }
    }
}
