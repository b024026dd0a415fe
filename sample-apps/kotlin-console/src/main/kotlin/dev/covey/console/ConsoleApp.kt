package dev.covey.console

import dev.covey.platform.HttpUrlConnectionTransport
import dev.covey.rewards.ConsentCard
import dev.covey.rewards.ConsentCopy
import dev.covey.rewards.Menu
import dev.covey.rewards.Offers
import dev.covey.rewards.RoundResult
import dev.covey.rewards.Rounds
import dev.covey.rewards.PrivacyCenter
import dev.covey.rewards.RewardsSession
import java.io.File
import java.io.PrintStream
import org.covey.CancelHandle
import org.covey.CoveyException
import org.covey.DeviceConditions
import org.covey.Purpose

/**
 * The coffee shop rewards app on a terminal. Each input line is one command (see [HELP]);
 * interactive runs ask consent questions as they come up, scripted runs take the answers from
 * the `consent` command and stop at the first failing command.
 */
class ConsoleApp(
    private val session: RewardsSession,
    private val out: PrintStream,
    private val ask: ((String) -> String?)?,
    private val serverUrl: String?,
) {
    /** Runs [lines] in order; returns false when a command failed in scripted mode. */
    fun run(lines: Sequence<String>): Boolean {
        welcome()
        for (raw in lines) {
            val line = raw.trim()
            if (line.isEmpty() || line.startsWith("#")) continue
            if (ask == null) out.println("> $line")
            val words = line.split(Regex("\\s+"))
            if (words[0] == "quit" || words[0] == "exit") break
            val ok = try {
                command(words[0], words.drop(1))
            } catch (e: CoveyException) {
                // The library's messages never carry member data; show them as they are.
                out.println("error: ${e.javaClass.simpleName}: ${e.message}")
                false
            } catch (e: IllegalArgumentException) {
                out.println("error: ${e.message}")
                false
            }
            if (!ok && ask == null) return false
        }
        return true
    }

    private fun welcome() {
        out.println("☕ Coffee Shop Rewards — your history stays on this device.")
        if (session.consentCards().isNotEmpty()) {
            out.println("Some choices are waiting for you: type 'consent' to review them.")
        }
    }

    private fun command(name: String, args: List<String>): Boolean = when (name) {
        "help" -> { out.println(HELP); true }
        "menu" -> { menu(); true }
        "consent" -> consent(args)
        "buy" -> { buy(args); true }
        "offers" -> { offers(args.firstOrNull()?.toIntOrNull() ?: 3); true }
        "join-round" -> joinRound(args)
        "refresh-model" -> { refreshModel(); true }
        "privacy" -> { privacy(); true }
        "receipts" -> { receipts(); true }
        "withdraw" -> { decide(args, allow = false); true }
        "allow" -> { decide(args, allow = true); true }
        "export" -> { export(args); true }
        "erase" -> erase(args)
        else -> throw IllegalArgumentException("unknown command '$name' (try 'help')")
    }

    private fun menu() {
        out.println("Menu:")
        Menu.items.forEach { out.println("  %-18s %-20s %8s".format(it.id, it.name, Menu.price(it.priceCents))) }
    }

    /**
     * Shows every pending consent card (why it is asked, what it uses, where the data goes,
     * how long it is kept, the plain-language summary) and records the answer. Scripted runs
     * answer with `consent personalization=yes training=no ...`.
     */
    private fun consent(args: List<String>): Boolean {
        val answers = args.associate { arg ->
            val (purpose, answer) = arg.split("=", limit = 2).let { it[0] to it.getOrElse(1) { "" } }
            purposeOf(purpose) to (answer == "yes")
        }
        val cards = session.consentCards()
        if (cards.isEmpty()) out.println("No choices are waiting: you can change them any time in 'privacy'.")
        cards.firstOrNull()?.let { out.println("In short: ${it.plainLanguage}") }
        for (card in cards) {
            showCard(card)
            session.shown(card, "console_consent")
            // Enter (or end of input) leaves the choice open rather than recording a refusal.
            val accept = answers[card.purpose] ?: ask?.invoke("Allow \"${card.title}\"? [y/n, Enter: decide later] ")
                ?.trim()?.lowercase()?.takeIf { it.isNotEmpty() }?.startsWith("y")
            if (accept == null) {
                out.println("  (left undecided)")
                continue
            }
            val decision = session.answer(card, accept, "console_consent")
            out.println("  → ${PrivacyCenter.choice(decision.status.state)} (receipt ${decision.receipt.receiptId})")
        }
        return true
    }

    private fun showCard(card: ConsentCard) {
        out.println()
        out.println("── ${card.title} ──")
        out.println("  ${card.why}")
        out.println("  Uses: ${card.uses.joinToString(", ")}")
        out.println("  Where it goes: ${card.whereItGoes}" + if (card.leavesPhone) "" else " (never leaves this device)")
        out.println("  Kept for: ${card.keptForDays} days")
    }

    private fun buy(args: List<String>) {
        val id = args.firstOrNull() ?: throw IllegalArgumentException("buy ITEM [QUANTITY]")
        val quantity = args.getOrNull(1)?.toUIntOrNull() ?: 1u
        session.buy(id, quantity)
        val item = Menu.find(id)!!
        out.println("Bought ${quantity} × ${item.name} (${Menu.price(item.priceCents * quantity.toLong())}). Saved on this device.")
    }

    private fun offers(count: Int) {
        val list = Offers.load(session.client, count)
        if (list == null) {
            out.println("No offers yet: the shop's model is not on this device (start with --model FILE).")
            return
        }
        out.println(if (list.personalized) "Picked for you:" else "Popular today:")
        list.offers.forEachIndexed { i, offer ->
            out.println("  ${i + 1}. ${offer.name}${offer.price?.let { " ($it)" } ?: ""}")
            out.println("     ${offer.reason}")
        }
        list.note?.let { out.println("  ($it)") }
    }

    /**
     * Takes part in the open round as a plugged-in desktop on a wired network would (these
     * are the conditions a phone's scheduler measures); `--on-battery` reports the laptop
     * unplugged at 15%, which the library refuses with its reason.
     */
    private fun joinRound(args: List<String>): Boolean {
        val url = serverUrl ?: throw IllegalArgumentException("no server configured (start with --server URL)")
        val onBattery = "--on-battery" in args
        val conditions = DeviceConditions(charging = !onBattery, unmetered = true, idle = true, batteryPercent = if (onBattery) 15u else 100u)
        out.println("Joining a training round (this waits for enough members to check in)…")
        val result = CancelHandle().use { cancel -> Rounds.join(session.client, HttpUrlConnectionTransport(url), conditions, cancel) }
        out.println(result.describe())
        return result !is RoundResult.Failed
    }

    /** Downloads the shop's newest model, when there is one (needs 'training' allowed). */
    private fun refreshModel() {
        val url = serverUrl ?: throw IllegalArgumentException("no server configured (start with --server URL)")
        val installed = session.client.refreshModelWithTransport(HttpUrlConnectionTransport(url))
        out.println(installed?.let { "Downloaded the shop's new model, version $it." } ?: "Your model is up to date.")
    }

    private fun privacy() {
        val center = session.privacyCenter()
        out.println("Privacy center")
        out.println("  ${center.plainLanguage}")
        out.println("  Your choices:")
        center.purposes.forEach {
            val where = if (it.leavesPhone) it.whereItGoes else "stays on this device"
            out.println("    %-38s %-12s %s, kept %s days".format(it.title, it.choice, where, it.keptForDays))
        }
        out.println("  Stored on this device:")
        if (center.stored.none { it.count > 0uL }) out.println("    nothing")
        center.stored.filter { it.count > 0uL }.forEach { out.println("    ${it.what}: ${it.count}") }
        out.println("  Left this device: ${center.uploads} model update(s), privacy loss ε = %.3f".format(center.cumulativeEpsilon))
        center.lastUploadMs?.let { out.println("  Last update sent: ${ConsentCopy.date(it)}") }
        out.println("  Signed receipts: ${center.receipts.size} (type 'receipts')")
    }

    private fun receipts() {
        session.privacyCenter().receipts.forEach {
            out.println("  ${ConsentCopy.date(it.eventTimeMs)}  %-20s %-10s notice v%s  %s".format(it.purpose, it.event.name.lowercase(), it.noticeVersion, it.receiptId))
        }
    }

    private fun decide(args: List<String>, allow: Boolean) {
        val purpose = purposeOf(args.firstOrNull() ?: throw IllegalArgumentException("withdraw|allow PURPOSE"))
        val decision = if (allow) session.allow(purpose) else session.withdraw(purpose)
        val erased = if (decision.erasedItems > 0uL) "; ${decision.erasedItems} derived item(s) erased" else ""
        out.println("${PURPOSE_NAMES.getValue(purpose)}: ${PrivacyCenter.choice(decision.status.state)}$erased (receipt ${decision.receipt.receiptId})")
    }

    private fun export(args: List<String>) {
        val file = File(args.firstOrNull() ?: throw IllegalArgumentException("export FILE"))
        val json = session.exportJson()
        file.writeText(json)
        out.println("Exported everything this device holds about you to ${file.path} (${json.length} bytes).")
    }

    private fun erase(args: List<String>): Boolean {
        val confirmed = args.firstOrNull() == "--yes" ||
            ask?.invoke("Delete everything on this device, including your choices? [y/N] ")?.trim()?.lowercase()?.startsWith("y") == true
        if (!confirmed) {
            out.println("Nothing was deleted.")
            return true
        }
        val report = session.eraseEverything()
        out.println("Deleted everything (${report.rowsDeleted} records); the encryption key was destroyed.")
        return true
    }

    companion object {
        val PURPOSE_NAMES = mapOf(
            Purpose.PERSONALIZATION to "personalization",
            Purpose.FEDERATED_TRAINING to "training",
            Purpose.ANALYTICS to "analytics",
        )

        fun purposeOf(name: String): Purpose =
            PURPOSE_NAMES.entries.firstOrNull { it.value == name }?.key
                ?: throw IllegalArgumentException("unknown purpose '$name' (personalization, training, analytics)")

        const val HELP = """Commands:
  menu                          what the shop sells
  consent [purpose=yes|no ...]  review pending choices (purposes: personalization, training, analytics)
  buy ITEM [QUANTITY]           record a purchase
  offers [K]                    your offers, and why
  join-round [--on-battery]     help improve suggestions (needs 'training' allowed and --server)
  refresh-model                 download the shop's newest model (needs 'training' allowed and --server)
  privacy                       the privacy center
  receipts                      signed receipts of your choices
  withdraw PURPOSE | allow PURPOSE
  export FILE                   download everything this device holds about you
  erase [--yes]                 delete everything
  quit"""
    }
}
