package dev.covey.testing

import java.io.File
import java.net.HttpURLConnection
import java.net.ServerSocket
import java.net.URI
import java.nio.file.Files
import java.util.concurrent.TimeUnit

/**
 * A real `covey-server` process on loopback for the JVM tests: `init` a small coffee-shop
 * population from the shared test config and the caller's items CSV, then `serve` it on a free port and wait for
 * `/healthz`. The binary comes from the `covey.server.bin` system property (set by Maven from
 * scripts/tests.d/60-kotlin). Rounds are small (cohorts of [cohortMin] devices, one-second
 * check-in) so a test can run one with a handful of clients.
 */
class LocalServer private constructor(
    private val workDir: File,
    /** `http://127.0.0.1:PORT` */
    val baseUrl: String,
    private val process: Process,
    private val log: File,
) : AutoCloseable {

    /** The server's output so far (for failure messages; it never holds member data). */
    fun log(): String = log.readText()

    /** The newest global model as `covey-server export-model` writes it (what an app bundles). */
    fun exportModel(): ByteArray {
        val out = File(workDir, "model-export.bin")
        run(binary(), "export-model", "--population", POPULATION, "--out", out.path, "--data", File(workDir, "data").path)
        return out.readBytes()
    }

    /** `covey-server rounds --json` for the population: the recorded rounds. */
    fun roundsJson(): String = run(binary(), "rounds", "--population", POPULATION, "--json", "--data", File(workDir, "data").path)

    override fun close() {
        process.destroy()
        if (!process.waitFor(5, TimeUnit.SECONDS)) process.destroyForcibly().waitFor()
        workDir.deleteRecursively()
    }

    companion object {
        /** The population every fixture creates. */
        const val POPULATION = "coffee-rewards"

        /**
         * Initializes and serves a fresh population over [catalogCsv] (`item_id,category,price`
         * lines with a header); rounds take cohorts of [cohortMin]..[cohortMax] devices.
         */
        fun start(catalogCsv: String, cohortMin: Int = 3, cohortMax: Int = 3): LocalServer {
            val dir = Files.createTempDirectory("covey-server-").toFile()
            val config = File(dir, "population.toml")
            File(dir, "items.csv").writeText(catalogCsv)
            config.writeText(populationToml(cohortMin, cohortMax))
            val data = File(dir, "data")
            run(binary(), "init", "--config", config.path, "--data", data.path)
            val port = ServerSocket(0).use { it.localPort }
            val log = File(dir, "server.log")
            val process = ProcessBuilder(
                binary(), "serve", "--data", data.path, "--listen", "127.0.0.1:$port", "--tick-ms", "100",
            ).redirectErrorStream(true).redirectOutput(log).start()
            val server = LocalServer(dir, "http://127.0.0.1:$port", process, log)
            server.awaitHealthy()
            return server
        }

        private fun binary(): String {
            val path = System.getProperty("covey.server.bin")
                ?: error("system property covey.server.bin is not set (run through scripts/tests.d/60-kotlin)")
            check(File(path).canExecute()) { "covey-server binary not found at $path" }
            return path
        }

        private fun run(vararg command: String): String {
            val process = ProcessBuilder(*command).redirectErrorStream(true).start()
            val output = process.inputStream.bufferedReader().readText()
            check(process.waitFor(60, TimeUnit.SECONDS) && process.exitValue() == 0) {
                "${command.drop(1).take(1)} failed: $output"
            }
            return output
        }

        // The shared test population (tests/fixtures/population.toml: small and fast, 1-second
        // check-in, FedAvg at rate 1 so the published model visibly moves) with this server's
        // name and cohort sizes. Every key is unique in the file, so a line is replaced whole.
        private fun populationToml(cohortMin: Int, cohortMax: Int): String {
            val fields = mapOf("name" to "\"$POPULATION\"", "cohort_min" to "$cohortMin", "cohort_max" to "$cohortMax")
            val replaced = mutableSetOf<String>()
            val toml = Fixtures.file("population.toml").readLines().joinToString("\n", postfix = "\n") { line ->
                val key = line.substringBefore(" = ", missingDelimiterValue = "")
                fields[key]?.let { replaced += key; "$key = $it" } ?: line
            }
            check(replaced == fields.keys) { "population.toml lacks ${fields.keys - replaced}" }
            return toml
        }
    }

    private fun awaitHealthy() {
        val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20)
        while (System.nanoTime() < deadline) {
            check(process.isAlive) { "covey-server exited: ${log()}" }
            val healthy = runCatching {
                val conn = URI("$baseUrl/healthz").toURL().openConnection() as HttpURLConnection
                conn.connectTimeout = 500
                conn.readTimeout = 500
                try { conn.responseCode == 200 } finally { conn.disconnect() }
            }.getOrDefault(false)
            if (healthy) return
            Thread.sleep(50)
        }
        close()
        error("covey-server did not become healthy within 20 s")
    }
}
