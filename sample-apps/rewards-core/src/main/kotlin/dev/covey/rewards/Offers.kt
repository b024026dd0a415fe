package dev.covey.rewards

import org.covey.CoveyClient
import org.covey.EventKind
import org.covey.Explanation
import org.covey.FallbackReason

/** One offer on screen: the item, and in plain words why it is offered. */
data class Offer(val itemId: String, val name: String, val price: String?, val reason: String, val personalized: Boolean)

/** The offers of one screen; [note] says why they are not personal, when they are not. */
data class OfferList(val personalized: Boolean, val note: String?, val offers: List<Offer>)

/**
 * Offers from the on-device recommender, each with its "because you bought …" explanation in
 * menu names. When personalization is not allowed (or the history is too short) the library
 * ranks by overall popularity without reading the history, and the list says so.
 */
object Offers {
    /** The top [count] offers, or null while no model of the shop is on the device yet. */
    fun load(client: CoveyClient, count: Int): OfferList? {
        if (client.modelVersion() == null) return null
        val recs = client.recommend(count.toUInt())
        val offers = recs.items.map { rec ->
            val why = client.explain(rec.itemId)
            val item = Menu.find(rec.itemId)
            Offer(rec.itemId, Menu.nameOf(rec.itemId), item?.let { Menu.price(it.priceCents) }, reason(why), why.personalDataUsed)
        }
        return OfferList(recs.personalized, recs.fallback?.let(::note), offers)
    }

    /** "Because you bought Oat latte and Croissant." — or why no personal data was used. */
    fun reason(why: Explanation): String =
        if (why.because.isEmpty()) {
            "Popular with members overall; no personal data was used for this suggestion."
        } else {
            // One verb per kind of event: "bought Oat latte and Croissant and redeemed Muffin".
            "Because you " + why.because.groupBy({ verb(it.kind) }, { Menu.nameOf(it.itemId) })
                .map { (verb, names) -> "$verb ${names.joinToString(" and ")}" }
                .joinToString(" and ") + "."
        }

    private fun verb(kind: EventKind?): String = when (kind) {
        EventKind.PURCHASE -> "bought"
        EventKind.REDEMPTION -> "redeemed"
        EventKind.VISIT -> "visited"
        EventKind.OFFER_CLICK -> "opened an offer for"
        EventKind.OFFER_VIEW -> "viewed an offer for"
        null -> "chose"
    }

    /** Why a list is not personal, for the member. */
    fun note(reason: FallbackReason): String = when (reason) {
        is FallbackReason.NoConsent -> "Personal offers are off, so your history was not used."
        is FallbackReason.TooLittleHistory ->
            "Buy ${reason.needed - reason.items} more different item(s) for offers picked for you."
    }
}
