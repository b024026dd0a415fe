package dev.covey.console

import dev.covey.platform.HttpUrlConnectionTransport
import dev.covey.rewards.Menu
import dev.covey.testing.Clients
import dev.covey.testing.InMemoryKeyStore
import dev.covey.testing.LocalServer
import java.util.concurrent.Executors
import java.util.concurrent.TimeUnit
import org.covey.CancelHandle
import org.covey.DeviceConditions
import org.covey.ParticipationOutcome
import org.covey.Purpose
import java.io.ByteArrayOutputStream
import java.io.File
import java.io.PrintStream
import org.json.JSONObject
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir

/**
 * The console app, run the way the README shows (`--script`), against a real covey-server on
 * loopback: the whole member journey, with assertions on what the member reads.
 */
class ConsoleJourneyTest {
    @TempDir
    lateinit var dir: File

    private fun runScript(server: LocalServer?, member: String, script: String, password: String = "correct horse", model: File? = null): Pair<Int, String> {
        val file = File(dir, "$member.script").apply { writeText(script.trimIndent()) }
        val out = ByteArrayOutputStream()
        val args = mutableListOf("--data", File(dir, "$member-data").path, "--keys", File(dir, "$member.p12").path, "--member", member, "--script", file.path)
        server?.let { args += listOf("--server", it.baseUrl) }
        model?.let { args += listOf("--model", it.path) }
        val code = runApp(args.toTypedArray(), PrintStream(out, true, "UTF-8")) { password.toCharArray() }
        return code to out.toString("UTF-8")
    }

    @Test
    fun `consent prompts show the purpose's terms and the plain-language summary, and are answered once`() {
        val (code, out) = runScript(null, "ada", """
            consent personalization=yes training=no analytics=no
            consent
        """)
        assertEquals(0, code, out)
        assertTrue(out.contains("── Personal offers ──"), out)
        assertTrue(out.contains("You haven't decided yet."), out)
        assertTrue(out.contains("Uses: purchases"), out)
        assertTrue(out.contains("(never leaves this device)"), out)
        assertTrue(out.contains("In short: Your loyalty history is stored encrypted on this phone. Not decided yet: "), out)
        assertTrue(out.contains("→ allowed (receipt "), out)
        assertTrue(out.contains("→ declined (receipt "), out)
        // The second 'consent' finds nothing left to ask.
        assertTrue(out.contains("No choices are waiting"), out)
    }

    @Test
    fun `the privacy center, export, withdrawal and erase do what they say`() {
        val export = File(dir, "export.json")
        val (code, out) = runScript(null, "bea", """
            consent personalization=yes training=yes analytics=no
            buy oat-latte
            buy croissant 2
            privacy
            export ${export.path}
            withdraw personalization
            receipts
            erase --yes
            privacy
        """)
        assertEquals(0, code, out)
        assertTrue(out.contains("Bought 2 × Butter croissant ($6.00). Saved on this device."), out)
        assertTrue(out.contains("You allowed: Improve recommendations for everyone"), out)
        assertTrue(Regex("Personal offers +allowed +stays on this device, kept 730 days").containsMatchIn(out), out)
        assertTrue(out.contains("    purchases: 2"), out)
        assertTrue(out.contains("Left this device: 0 model update(s), privacy loss ε = 0.000"), out)
        assertTrue(out.contains("personalization: withdrawn"), out)

        val json = JSONObject(export.readText())
        assertEquals(2, json.getJSONObject("store").getJSONArray("events").length())
        assertTrue(export.readText().contains("oat-latte"))

        // After erase the privacy center is empty and every purpose is undecided again.
        val afterErase = out.substringAfter("Deleted everything")
        assertTrue(afterErase.contains("nothing"), afterErase)
        assertTrue(afterErase.contains("Not decided yet"), afterErase)
    }

    @Test
    fun `offers are explained by the member's purchases, and the member joins a round with two others`() {
        LocalServer.start(Menu.catalogCsv()).use { server ->
            val model = File(dir, "model.bin").apply { writeBytes(server.exportModel()) }
            // Two other members' phones take part in the same round (cohorts of three).
            val pool = Executors.newFixedThreadPool(2)
            val neighbours = listOf("nia", "omar").map { name -> pool.submit<ParticipationOutcome> { neighbour(server, name) } }
            val (code, out) = runScript(server, "eve", """
                consent personalization=yes training=yes analytics=no
                offers 3
                buy oat-latte
                buy croissant
                buy espresso
                buy banana-bread
                offers 3
                join-round --on-battery
                join-round
                privacy
                withdraw personalization
                offers 3
            """, model = model)
            val others = neighbours.map { it.get(120, TimeUnit.SECONDS) }
            pool.shutdown()
            assertEquals(0, code, out)
            assertTrue(out.contains("Installed the shop's model, version 0."), out)
            // Too little history at first: global offers, and the app says what is missing.
            assertTrue(out.contains("Popular today:"), out)
            assertTrue(out.contains("more different item(s) for offers picked for you"), out)
            // Then personal offers, explained in menu names from the member's own purchases.
            val personal = out.substringAfter("> offers 3").substringAfter("> offers 3").substringBefore("> join-round")
            assertTrue(personal.contains("Picked for you:"), personal)
            assertTrue(Regex("Because you bought (Oat latte|Butter croissant|Espresso|Banana bread)").containsMatchIn(personal), personal)
            // Unplugged: refused with the reason named; plugged in: one update sent.
            assertTrue(out.contains("Not this time: ") && out.substringAfter("Not this time: ").substringBefore("\n").contains("charging"), out)
            assertTrue(out.contains("Thanks! Your phone sent one encrypted, noise-protected update"), out)
            assertTrue(out.contains("Left this device: 1 model update(s)"), out)
            assertEquals(1, others.map { it.round }.toSet().size)
            // Withdrawn: back to the global ranking at once.
            val afterWithdrawal = out.substringAfter("> withdraw personalization")
            assertTrue(afterWithdrawal.contains("Popular today:"), afterWithdrawal)
            assertTrue(afterWithdrawal.contains("Personal offers are off, so your history was not used."), afterWithdrawal)

            // Next launch: the round's model (version 1) is published; the app downloads it.
            val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30)
            while (!server.roundsJson().contains("completed") && System.nanoTime() < deadline) Thread.sleep(200)
            val (code2, out2) = runScript(server, "eve", """
                refresh-model
                refresh-model
                offers 2
            """)
            assertEquals(0, code2, out2)
            assertTrue(out2.contains("Downloaded the shop's new model, version 1."), out2)
            assertTrue(out2.contains("Your model is up to date."), out2)
            assertTrue(out2.contains("Popular today:"), out2)
        }
    }

    /** Another member's phone, straight on the library: history, consent, one round. */
    private fun neighbour(server: LocalServer, name: String): ParticipationOutcome =
        Clients.open(File(dir, name), InMemoryKeyStore(), server.baseUrl).use { client ->
            client.recordEvents(listOf("espresso", "croissant", "flat-white", "green-tea").mapIndexed { i, item ->
                Clients.purchase(item, Menu.find(item)!!.category, Menu.find(item)!!.priceCents, 1_767_225_600_000L + i * 60_000L)
            })
            client.grant(Purpose.FEDERATED_TRAINING, Clients.NOTICE_VERSION, "test")
            val plugged = DeviceConditions(charging = true, unmetered = true, idle = true, batteryPercent = 80u)
            CancelHandle().use { client.participateWithTransport(HttpUrlConnectionTransport(server.baseUrl), plugged, it) }
        }

    @Test
    fun `interactive runs ask before recording a choice or deleting anything`() {
        Clients.open(File(dir, "ivy"), InMemoryKeyStore()).use { client ->
            val session = dev.covey.rewards.RewardsSession(client, Clients.NOTICE_VERSION)
            val questions = mutableListOf<String>()
            val answers = ArrayDeque(listOf("y", "n", "", "n"))
            val out = ByteArrayOutputStream()
            val app = ConsoleApp(session, PrintStream(out, true, "UTF-8"), ask = { q -> questions += q; answers.removeFirst() }, serverUrl = null)
            assertTrue(app.run(sequenceOf("consent", "buy espresso", "erase")))
            // Three purposes asked about: yes, no, and no answer at all (left undecided).
            assertEquals(4, questions.size, questions.toString())
            assertTrue(questions.last().startsWith("Delete everything"), questions.last())
            assertTrue(out.toString("UTF-8").contains("(left undecided)"))
            assertTrue(out.toString("UTF-8").contains("Nothing was deleted."))
            assertEquals(1, client.receipts().count { it.event.name == "GIVEN" })
            assertEquals(1, client.receipts().count { it.event.name == "REFUSED" })
            assertEquals(1, client.promptsNeeded().size, "the unanswered purpose is asked again next time")
        }
    }

    @Test
    fun `a wrong key file password opens nothing`() {
        runScript(null, "cy", "buy espresso").also { (code, out) -> assertEquals(0, code, out) }
        val (code, out) = runScript(null, "cy", "privacy", password = "wrong")
        assertEquals(3, code)
        assertTrue(out.contains("cannot read the key file"), out)
    }

    @Test
    fun `an unknown item or command stops a script with a clear message`() {
        val (code, out) = runScript(null, "dee", "buy unicorn-frappe")
        assertEquals(1, code)
        assertTrue(out.contains("error: not on the menu: unicorn-frappe"), out)
    }
}
