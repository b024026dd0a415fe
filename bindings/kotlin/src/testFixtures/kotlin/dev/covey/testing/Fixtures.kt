package dev.covey.testing

import java.io.File

/**
 * The test population and catalog under tests/fixtures, shared with the Rust and Python
 * suites. The directory comes from the `covey.fixtures.dir` system property (set by Maven).
 */
object Fixtures {
    /** A file of the shared fixtures directory. */
    fun file(name: String): File {
        val dir = System.getProperty("covey.fixtures.dir")
            ?: error("system property covey.fixtures.dir is not set (run through scripts/tests.d/60-kotlin)")
        return File(dir, name).also { check(it.isFile) { "fixture $it not found" } }
    }

    /** The header and first [count] items (`sku-0`, `sku-1`, ...) of the shared items CSV. */
    fun itemsCsv(count: Int): String =
        file("items.csv").readLines().take(1 + count).joinToString("") { "$it\n" }
}
