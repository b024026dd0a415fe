package dev.covey.console

import dev.covey.rewards.CoffeeShop
import dev.covey.rewards.RewardsSession
import java.io.File
import java.io.PrintStream
import kotlin.system.exitProcess
import org.covey.CoveyClient
import org.covey.CoveyException

/** Command-line options. */
data class Options(
    val data: File,
    val keys: File,
    val server: String?,
    val script: File?,
    val member: String,
    val model: File?,
) {
    companion object {
        const val USAGE = """usage: kotlin-console [--data DIR] [--keys FILE] [--server URL] [--member ID] [--script FILE]
  --data DIR     the encrypted store (default ~/.coffee-rewards/data)
  --keys FILE    the PKCS#12 key file wrapping the store's key (default ~/.coffee-rewards/keys.p12);
                 its password comes from COFFEE_REWARDS_PASSWORD, else it is asked for
  --server URL   the aggregation server, for 'join-round'
  --member ID    the member reference recorded on receipts (default: local-member)
  --model FILE   the shop's model to install when the device has none (a covey-server export, as an
                 app bundles its first model)
  --script FILE  run the commands in FILE without asking anything (stops at the first error)"""

        fun parse(args: Array<String>): Options {
            val home = File(System.getProperty("user.home"), ".coffee-rewards")
            var data = File(home, "data")
            var keys = File(home, "keys.p12")
            var server: String? = null
            var script: File? = null
            var member = "local-member"
            var model: File? = null
            var i = 0
            fun value(): String = args.getOrNull(++i) ?: throw IllegalArgumentException("${args[i - 1]} needs a value")
            while (i < args.size) {
                when (args[i]) {
                    "--data" -> data = File(value())
                    "--keys" -> keys = File(value())
                    "--server" -> server = value()
                    "--script" -> script = File(value())
                    "--member" -> member = value()
                    "--model" -> model = File(value())
                    "-h", "--help" -> throw IllegalArgumentException(USAGE)
                    else -> throw IllegalArgumentException("unknown option ${args[i]}\n$USAGE")
                }
                i++
            }
            return Options(data, keys, server, script, member, model)
        }
    }
}

/**
 * Runs the app with [args]; returns the process exit code (0 ok, 1 a command failed, 2 bad
 * usage, 3 the store could not be opened). Separate from [main] so tests run it in-process.
 */
fun runApp(args: Array<String>, out: PrintStream, password: () -> CharArray): Int {
    val options = try {
        Options.parse(args)
    } catch (e: IllegalArgumentException) {
        out.println(e.message)
        return 2
    }
    val client = try {
        options.data.mkdirs()
        CoveyClient.open(CoffeeShop.clientConfig(options.data.path, options.server, options.member), Pkcs12KeyStore(options.keys, password()))
    } catch (e: CoveyException) {
        out.println("error: cannot open your rewards on this device: ${e.javaClass.simpleName}: ${e.message}")
        return 3
    } catch (e: java.io.IOException) {
        // A wrong password surfaces as an IOException from the PKCS#12 loader.
        out.println("error: cannot read the key file ${options.keys.path} (wrong password?)")
        return 3
    }
    return client.use {
        val session = RewardsSession(it, CoffeeShop.NOTICE_VERSION)
        options.model?.let { file ->
            try {
                session.installFirstModel { file.readBytes() }?.let { v -> out.println("Installed the shop's model, version $v.") }
            } catch (e: CoveyException) {
                out.println("error: the model file was not installed: ${e.message}")
                return 1
            }
        }
        val ok = if (options.script != null) {
            ConsoleApp(session, out, ask = null, serverUrl = options.server).run(options.script.readLines().asSequence())
        } else {
            out.println("Type 'help' for commands.")
            val lines = generateSequence { out.print("> "); readlnOrNull() }
            ConsoleApp(session, out, ask = { q -> out.print(q); readlnOrNull() }, serverUrl = options.server).run(lines)
        }
        if (ok) 0 else 1
    }
}

fun main(args: Array<String>) {
    val code = runApp(args, System.out) {
        System.getenv("COFFEE_REWARDS_PASSWORD")?.toCharArray()
            ?: System.console()?.readPassword("Key file password: ")
            ?: run {
                System.err.println("set COFFEE_REWARDS_PASSWORD (no terminal to ask on)")
                exitProcess(2)
            }
    }
    exitProcess(code)
}
