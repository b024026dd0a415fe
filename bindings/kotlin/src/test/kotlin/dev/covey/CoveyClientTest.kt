package dev.covey

import dev.covey.testing.Clients
import dev.covey.testing.InMemoryKeyStore
import java.io.File
import org.covey.ConsentState
import org.covey.CoveyException
import org.covey.DataCategory
import org.covey.PromptReason
import org.covey.Purpose
import org.json.JSONObject
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir

/**
 * The generated Kotlin API over the real libcovey_ffi (JNA): a client opened with a Kotlin
 * key store, events, consent, receipts, the privacy center, export and erasure. Real SQLite
 * files in a temporary directory, real AES-GCM key wrapping by the test's key store.
 */
class CoveyClientTest {
    @TempDir
    lateinit var dir: File

    private val t0 = 1_767_225_600_000L // 2026-01-01T00:00:00Z

    @Test
    fun `the data key is wrapped by the host key store and the store reopens only with it`() {
        val keys = InMemoryKeyStore()
        Clients.open(dir, keys).use { client ->
            client.recordEvent(Clients.purchase("oat-latte", "coffee", 450, t0))
        }
        assertEquals(1, keys.size(), "one platform key wraps the data key")
        assertTrue("wrap" in keys.calls)

        // Same key store: the member's history is back.
        Clients.open(dir, keys).use { client ->
            val export = JSONObject(client.exportJson())
            assertEquals(1, export.getJSONObject("store").getJSONArray("events").length())
        }
        assertTrue("unwrap" in keys.calls)

        // The platform key was reset (new phone, restored backup without the Keystore): the
        // wrapped data key no longer opens, and the client says so instead of reading garbage.
        keys.rotateAllBehindTheLibrarysBack()
        assertThrows<CoveyException.KeyUnavailable> { Clients.open(dir, keys) }
        // A key store that never saw this store cannot open it either.
        assertThrows<CoveyException.KeyUnavailable> { Clients.open(dir, InMemoryKeyStore()) }
    }

    @Test
    fun `a fresh member is prompted for every purpose and granting stops the prompt`() {
        Clients.open(dir, InMemoryKeyStore()).use { client ->
            val prompts = client.promptsNeeded()
            assertEquals(setOf(Purpose.PERSONALIZATION, Purpose.FEDERATED_TRAINING, Purpose.ANALYTICS), prompts.map { it.purpose }.toSet())
            assertTrue(prompts.all { it.reason is PromptReason.NeverAsked })

            client.promptShown(Purpose.PERSONALIZATION, "onboarding")
            val decision = client.grant(Purpose.PERSONALIZATION, Clients.NOTICE_VERSION, "onboarding")
            assertEquals(ConsentState.GIVEN, decision.status.state)
            assertTrue(decision.status.validForProcessing)
            assertEquals(Clients.NOTICE_VERSION, decision.receipt.noticeVersion)
            client.refuse(Purpose.ANALYTICS, Clients.NOTICE_VERSION, "onboarding")

            assertEquals(listOf(Purpose.FEDERATED_TRAINING), client.promptsNeeded().map { it.purpose })
            assertEquals(ConsentState.REFUSED, client.status(Purpose.ANALYTICS).state)
        }
    }

    @Test
    fun `withdrawal ends the purpose at once and is receipted`() {
        Clients.open(dir, InMemoryKeyStore()).use { client ->
            client.grant(Purpose.PERSONALIZATION, Clients.NOTICE_VERSION, "onboarding")
            val withdrawn = client.withdraw(Purpose.PERSONALIZATION, Clients.NOTICE_VERSION, "privacy_center")
            assertEquals(ConsentState.WITHDRAWN, withdrawn.status.state)
            assertFalse(withdrawn.status.validForProcessing)
            assertFalse(client.status(Purpose.PERSONALIZATION).validForProcessing)
            // Withdrawals are not nagged about again.
            assertFalse(Purpose.PERSONALIZATION in client.promptsNeeded().map { it.purpose })

            val receipts = client.receipts()
            assertEquals(listOf("given", "withdrawn"), receipts.filter { it.purpose == "personalization" }.map { it.event.name.lowercase() })
            // Every receipt verifies against the device key and the audit log; an edited one does not.
            receipts.forEach { client.verifyReceipt(it.json) }
            val forged = receipts.last().json.replace("withdrawn", "given")
            assertNotEquals(receipts.last().json, forged)
            assertThrows<CoveyException.InvalidInput> { client.verifyReceipt(forged) }
            assertTrue(client.verifyAuditLog().intact)
        }
    }

    @Test
    fun `a notice version other than the one in force is rejected and nothing is recorded`() {
        Clients.open(dir, InMemoryKeyStore()).use { client ->
            assertThrows<CoveyException.InvalidInput> { client.grant(Purpose.PERSONALIZATION, 7u, "onboarding") }
            assertEquals(ConsentState.NOT_ASKED, client.status(Purpose.PERSONALIZATION).state)
            assertTrue(client.receipts().isEmpty())
        }
    }

    @Test
    fun `a wording-only notice update keeps consent and only the version in force is accepted`() {
        val keys = InMemoryKeyStore()
        Clients.open(dir, keys).use { it.grant(Purpose.PERSONALIZATION, 1u, "onboarding") }
        Clients.open(dir, keys, noticeVersion = 2u).use { client ->
            // Same material terms: the member is not asked again, the consent still holds.
            assertFalse(Purpose.PERSONALIZATION in client.promptsNeeded().map { it.purpose })
            assertTrue(client.status(Purpose.PERSONALIZATION).validForProcessing)
            // A screen still showing version 1 cannot record a decision against version 2.
            assertThrows<CoveyException.InvalidInput> { client.withdraw(Purpose.PERSONALIZATION, 1u, "privacy_center") }
            assertEquals(ConsentState.GIVEN, client.status(Purpose.PERSONALIZATION).state)
        }
    }

    @Test
    fun `a bad event is refused with a typed error and the batch is not written`() {
        Clients.open(dir, InMemoryKeyStore()).use { client ->
            val good = Clients.purchase("espresso", "coffee", 250, t0)
            val bad = good.copy(currency = "dollars")
            val e = assertThrows<CoveyException.InvalidInput> { client.recordEvents(listOf(good, bad)) }
            assertFalse(e.message.orEmpty().contains("dollars"), "no member data in errors: ${e.message}")
            val stored = client.privacySummary().stored.firstOrNull { it.category == DataCategory.PURCHASES }
            assertEquals(0uL, stored?.count ?: 0uL)
        }
    }

    @Test
    fun `the privacy center counts what is stored and the export holds history, consent and receipts`() {
        Clients.open(dir, InMemoryKeyStore()).use { client ->
            client.recordEvents((0 until 5).map { Clients.purchase("espresso", "coffee", 250, t0 + it * 60_000L) })
            client.grant(Purpose.PERSONALIZATION, Clients.NOTICE_VERSION, "onboarding")

            val summary = client.privacySummary()
            assertEquals(5uL, summary.stored.single { it.category == DataCategory.PURCHASES }.count)
            assertEquals(0uL, summary.uploads)
            assertEquals(0.0, summary.cumulativeEpsilon)
            assertTrue(summary.plainLanguage.contains("You allowed: Personal offers"), summary.plainLanguage)
            val personalization = summary.purposes.single { it.purpose == Purpose.PERSONALIZATION }
            assertFalse(personalization.leavesDevice)

            val export = JSONObject(client.exportJson())
            assertEquals("covey.device.export", export.getString("format"))
            assertEquals(5, export.getJSONObject("store").getJSONArray("events").length())
            assertEquals(1, export.getJSONArray("receipts").length())
            assertTrue(export.getJSONObject("audit_log").getJSONObject("verification").toString().isNotEmpty())
        }
    }

    @Test
    fun `erasing everything shreds the key and leaves an empty usable client`() {
        val keys = InMemoryKeyStore()
        Clients.open(dir, keys).use { client ->
            client.recordEvents((0 until 3).map { Clients.purchase("croissant", "bakery", 300, t0 + it) })
            client.grant(Purpose.PERSONALIZATION, Clients.NOTICE_VERSION, "onboarding")
            val report = client.eraseAll()
            assertTrue(report.rowsDeleted > 0uL)
            assertTrue("destroy" in keys.calls, "the host key store was asked to destroy its key")

            assertEquals(0, JSONObject(client.exportJson()).getJSONObject("store").getJSONArray("events").length())
            assertEquals(ConsentState.NOT_ASKED, client.status(Purpose.PERSONALIZATION).state)
            // Still usable afterwards.
            client.recordEvent(Clients.purchase("espresso", "coffee", 250, t0))
        }
        // No SQLite page in the data directory holds the erased item ids in the clear.
        val leaked = dir.walkTopDown().filter { it.isFile }.any { f -> String(f.readBytes(), Charsets.ISO_8859_1).contains("croissant") }
        assertFalse(leaked)
    }
}
