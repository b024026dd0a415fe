package dev.covey

import dev.covey.testing.Clients
import dev.covey.testing.InMemoryKeyStore
import dev.covey.testing.LocalServer
import java.io.File
import org.covey.CoveyClient
import org.covey.CoveyException
import org.covey.FallbackReason
import org.covey.Purpose
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir

/**
 * Offers from Kotlin over the population's real global model (exported by covey-server, as an
 * app would bundle it): personalized only with consent and enough history, explained by the
 * member's own purchases, and back to the global ranking the moment consent is withdrawn.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class RecommendTest {
    @TempDir
    lateinit var dir: File
    private lateinit var model: ByteArray

    @BeforeAll
    fun exportModel() {
        LocalServer.start(RoundTest.CATALOG).use { model = it.exportModel() }
    }

    private fun client(name: String, consent: Boolean, items: List<String>): CoveyClient {
        val client = Clients.open(File(dir, name), InMemoryKeyStore())
        assertEquals(0uL, client.installModel(model))
        client.recordEvents(items.mapIndexed { i, item -> Clients.purchase(item, "coffee", 300, RoundTest.T0 + i * 60_000L) })
        if (consent) client.grant(Purpose.PERSONALIZATION, Clients.NOTICE_VERSION, "test")
        return client
    }

    @Test
    fun `no model on the device means no offers, said plainly`() {
        Clients.open(File(dir, "empty"), InMemoryKeyStore()).use { client ->
            assertEquals(null, client.modelVersion())
            assertThrows<CoveyException.ModelUnavailable> { client.recommend(3u) }
            assertThrows<CoveyException.InvalidInput> { client.installModel(byteArrayOf(1, 2, 3)) }
            assertEquals(null, client.modelVersion())
        }
    }

    @Test
    fun `with consent and enough history offers are personal and explained by the member's purchases`() {
        val history = listOf("sku-0", "sku-1", "sku-6", "sku-0", "sku-7")
        client("fan", consent = true, items = history).use { client ->
            val recs = client.recommend(3u)
            assertTrue(recs.personalized)
            assertEquals(null, recs.fallback)
            assertEquals(3, recs.items.size)
            assertTrue(recs.items.zipWithNext().all { (a, b) -> a.score >= b.score }, "best first")
            val explained = recs.items.map { client.explain(it.itemId) }.filter { it.personalDataUsed }
            assertTrue(explained.isNotEmpty(), "at least one offer is explained by the history")
            for (why in explained) {
                assertTrue(why.because.all { it.itemId in history }, "reasons come from the member's own history: ${why.because}")
                assertTrue(why.text.startsWith("Because you bought"), why.text)
            }
            assertThrows<CoveyException.InvalidInput> { client.explain("not-on-the-menu") }
        }
    }

    @Test
    fun `without consent the ranking is global and no history is used to explain it`() {
        client("private", consent = false, items = listOf("sku-0", "sku-1", "sku-6")).use { client ->
            val recs = client.recommend(3u)
            assertFalse(recs.personalized)
            assertTrue(recs.fallback is FallbackReason.NoConsent, "${recs.fallback}")
            val why = client.explain(recs.items.first().itemId)
            assertFalse(why.personalDataUsed)
            assertTrue(why.because.isEmpty())
        }
    }

    @Test
    fun `withdrawal switches to the global ranking at once, and too little history says how much`() {
        client("changes-mind", consent = true, items = listOf("sku-0", "sku-1", "sku-6", "sku-4")).use { client ->
            assertTrue(client.recommend(3u).personalized)
            client.withdraw(Purpose.PERSONALIZATION, Clients.NOTICE_VERSION, "privacy_center")
            val after = client.recommend(3u)
            assertFalse(after.personalized)
            assertTrue(after.fallback is FallbackReason.NoConsent)
        }
        client("newcomer", consent = true, items = listOf("sku-0")).use { client ->
            val fallback = client.recommend(3u).fallback
            assertTrue(fallback is FallbackReason.TooLittleHistory, "$fallback")
            fallback as FallbackReason.TooLittleHistory
            assertEquals(1uL, fallback.items)
            assertTrue(fallback.needed > 1uL)
        }
    }
}
