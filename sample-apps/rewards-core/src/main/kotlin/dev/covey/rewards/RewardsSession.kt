package dev.covey.rewards

import org.covey.Channel
import org.covey.CoveyClient
import org.covey.Decision
import org.covey.EraseReport
import org.covey.EventKind
import org.covey.LoyaltyEvent
import org.covey.Purpose

/**
 * The coffee shop's member journey over one [CoveyClient]: the logic every front end shares
 * (console, Compose, tests). It holds no member data itself; everything is read from and
 * written to the client, which keeps it encrypted on the phone.
 *
 * Calls block on disk (and on the network when joining a round): call them off the UI thread.
 */
class RewardsSession(
    val client: CoveyClient,
    /** The notice version the app shows (the one the client was opened with). */
    val noticeVersion: UInt,
    private val storeId: String = "store-001",
    private val now: () -> Long = System::currentTimeMillis,
) {
    /**
     * Installs the model the app ships with ([read] is only called when needed) if the device
     * has none yet; returns its version, or null when a model was already installed (newer
     * versions come from the server, never from the app's bundle).
     */
    fun installFirstModel(read: () -> ByteArray): ULong? =
        if (client.modelVersion() == null) client.installModel(read()) else null

    /** The consent cards to show now (empty when every purpose is decided and current). */
    fun consentCards(): List<ConsentCard> = ConsentCopy.cards(client.promptsNeeded(), client.privacySummary())

    /** Records that [card] was put on screen on [surface] (the ledger keeps prompts too). */
    fun shown(card: ConsentCard, surface: String): Decision = client.promptShown(card.purpose, surface)

    /** The member's answer to [card]; the decision carries the signed receipt. */
    fun answer(card: ConsentCard, accept: Boolean, surface: String): Decision =
        if (accept) client.grant(card.purpose, noticeVersion, surface)
        else client.refuse(card.purpose, noticeVersion, surface)

    /** Withdraws [purpose] (from the privacy center): its derived data is erased at once. */
    fun withdraw(purpose: Purpose, surface: String = "privacy_center"): Decision =
        client.withdraw(purpose, noticeVersion, surface)

    /** Gives [purpose] again from the privacy center. */
    fun allow(purpose: Purpose, surface: String = "privacy_center"): Decision =
        client.grant(purpose, noticeVersion, surface)

    /** Rings up [quantity] × the menu item [itemId] at the counter; returns the store's event id. */
    fun buy(itemId: String, quantity: UInt = 1u): Long {
        val item = Menu.find(itemId) ?: throw IllegalArgumentException("not on the menu: $itemId")
        return client.recordEvent(
            LoyaltyEvent(
                kind = EventKind.PURCHASE,
                itemId = item.id,
                category = item.category,
                quantity = quantity,
                amountMinor = item.priceCents * quantity.toLong(),
                currency = "USD",
                storeId = storeId,
                channel = Channel.IN_STORE,
                timeMs = now(),
            ),
        )
    }

    /** The privacy center's contents. */
    fun privacyCenter(): PrivacyCenter = PrivacyCenter.from(client.privacySummary(), client.receipts())

    /** Everything the phone holds about the member, as one JSON document. */
    fun exportJson(): String = client.exportJson()

    /** Deletes everything; the app starts over with no consent given. */
    fun eraseEverything(): EraseReport = client.eraseAll()
}
