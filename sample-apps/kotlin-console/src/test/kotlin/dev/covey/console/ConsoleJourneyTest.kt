package dev.covey.console

import dev.covey.testing.LocalServer
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

    private fun runScript(server: LocalServer?, member: String, script: String, password: String = "correct horse"): Pair<Int, String> {
        val file = File(dir, "$member.script").apply { writeText(script.trimIndent()) }
        val out = ByteArrayOutputStream()
        val args = mutableListOf("--data", File(dir, "$member-data").path, "--keys", File(dir, "$member.p12").path, "--member", member, "--script", file.path)
        server?.let { args += listOf("--server", it.baseUrl) }
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
        assertTrue(out.contains("    2 purchases"), out)
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
