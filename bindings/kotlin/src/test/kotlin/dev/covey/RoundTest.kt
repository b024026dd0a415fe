package dev.covey

import dev.covey.platform.HttpUrlConnectionTransport
import dev.covey.testing.Clients
import dev.covey.testing.Fixtures
import dev.covey.testing.InMemoryKeyStore
import dev.covey.testing.LocalServer
import java.io.File
import java.util.concurrent.Executors
import java.util.concurrent.TimeUnit
import org.covey.CancelHandle
import org.covey.CoveyClient
import org.covey.CoveyException
import org.covey.DeviceConditions
import org.covey.ParticipationOutcome
import org.covey.Purpose
import org.covey.Transport
import org.covey.TransportException
import org.covey.TransportRequest
import org.covey.TransportResponse
import org.json.JSONArray
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir

/**
 * Round participation from Kotlin: real clients, a Kotlin [Transport] over HttpURLConnection,
 * and a real covey-server on loopback running SecAgg+ with distributed DP.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class RoundTest {
    @TempDir
    lateinit var dir: File
    private lateinit var server: LocalServer

    private val plugged = DeviceConditions(charging = true, unmetered = true, idle = true, batteryPercent = 90u)

    @BeforeAll
    fun start() {
        server = LocalServer.start(CATALOG, cohortMin = 3, cohortMax = 3)
    }

    @AfterAll
    fun stop() = server.close()

    private fun member(name: String, items: List<String>, training: Boolean = true): CoveyClient {
        val client = Clients.open(File(dir, name), InMemoryKeyStore(), server.baseUrl)
        client.recordEvents(items.mapIndexed { i, item -> Clients.purchase(item, "coffee", 300, T0 + i * 3_600_000L) })
        if (training) client.grant(Purpose.FEDERATED_TRAINING, Clients.NOTICE_VERSION, "test")
        return client
    }

    @Test
    fun `three members take part in one round and each privacy center records the upload`() {
        val members = listOf(
            member("m1", listOf("sku-0", "sku-6", "sku-1", "sku-0")),
            member("m2", listOf("sku-4", "sku-5", "sku-6", "sku-4")),
            member("m3", listOf("sku-0", "sku-2", "sku-7", "sku-3")),
        )
        val pool = Executors.newFixedThreadPool(members.size)
        try {
            val outcomes: List<ParticipationOutcome> = members.map { client ->
                pool.submit<ParticipationOutcome> {
                    CancelHandle().use { client.participateWithTransport(HttpUrlConnectionTransport(server.baseUrl), plugged, it) }
                }
            }.map { it.get(120, TimeUnit.SECONDS) }

            assertEquals(1, outcomes.map { it.round }.toSet().size, "one round: $outcomes")
            // Every member's masked upload has the same size, whatever its history.
            assertEquals(1, outcomes.map { it.uploadBytes }.toSet().size)
            assertTrue(outcomes.all { it.epsilon > 0.0 })
            for ((client, outcome) in members.zip(outcomes)) {
                val summary = client.privacySummary()
                assertEquals(1uL, summary.uploads)
                assertEquals(outcome.epsilon, summary.cumulativeEpsilon, 1e-9)
                assertTrue(client.verifyAuditLog().intact)
            }
            // The server finishes the round and publishes model version 1.
            val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30)
            while (!server.roundsJson().contains("\"completed\"") && System.nanoTime() < deadline) Thread.sleep(200)
            val rounds = JSONArray(server.roundsJson().trim().let { if (it.startsWith("[")) it else "[$it]" })
            assertTrue(rounds.toString().contains("completed"), server.roundsJson())
            // The published model reaches the phones: version 1, downloaded over the Kotlin
            // transport and digest-checked; asking again finds it current.
            val transport = HttpUrlConnectionTransport(server.baseUrl)
            assertEquals(1uL, members[0].refreshModelWithTransport(transport))
            assertEquals(1uL, members[0].modelVersion())
            assertEquals(null, members[0].refreshModelWithTransport(transport))
        } finally {
            pool.shutdownNow()
            members.forEach { it.close() }
        }
    }

    @Test
    fun `without training consent nothing is sent and the member is told why`() {
        val sent = mutableListOf<String>()
        val spy = object : Transport {
            override fun send(request: TransportRequest): TransportResponse {
                sent += request.path
                return HttpUrlConnectionTransport(server.baseUrl).send(request)
            }
        }
        member("no-consent", listOf("sku-0", "sku-6", "sku-0"), training = false).use { client ->
            val e = assertThrows<CoveyException.NotEligible> { CancelHandle().use { client.participateWithTransport(spy, plugged, it) } }
            assertTrue(e.message.orEmpty().contains("consent"), e.message)
        }
        assertEquals(emptyList<String>(), sent)
    }

    @Test
    fun `a phone on battery is not eligible, with the reason named`() {
        member("on-battery", listOf("sku-0", "sku-6", "sku-0")).use { client ->
            val unplugged = plugged.copy(charging = false, batteryPercent = 15u)
            val e = assertThrows<CoveyException.NotEligible> { CancelHandle().use { client.participateWithTransport(HttpUrlConnectionTransport(server.baseUrl), unplugged, it) } }
            assertTrue(e.message.orEmpty().contains("charging"), e.message)
        }
    }

    @Test
    fun `a failing host transport becomes a Network error, and a cancelled handle stops the work`() {
        val down = object : Transport {
            override fun send(request: TransportRequest): TransportResponse = throw TransportException.Unreachable("connection refused")
        }
        member("offline", listOf("sku-0", "sku-6", "sku-0")).use { client ->
            assertThrows<CoveyException.Network> { CancelHandle().use { client.participateWithTransport(down, plugged, it) } }
            val cancelled = CancelHandle().also { it.cancel() }
            assertThrows<CoveyException.Cancelled> { client.participateWithTransport(HttpUrlConnectionTransport(server.baseUrl), plugged, cancelled) }
            cancelled.close()
        }
    }

    companion object {
        const val T0 = 1_767_225_600_000L
        /** The first 8 items (`sku-0`..`sku-7`) of the shared test catalog. */
        val CATALOG = Fixtures.itemsCsv(8)
    }
}
