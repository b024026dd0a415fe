package dev.covey.rewards

import org.covey.Contributor
import org.covey.EventKind
import org.covey.Explanation
import org.covey.FallbackReason
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test

/** The words members read next to an offer. */
class OffersTest {
    private fun because(vararg items: Pair<String, EventKind?>) =
        Explanation("", true, items.map { (id, kind) -> Contributor(id, kind, 0.5f) }, null)

    @Test
    fun `reasons use menu names and one verb per kind of event`() {
        assertEquals("Because you bought Oat latte and Butter croissant and redeemed Banana bread.",
            Offers.reason(because("oat-latte" to EventKind.PURCHASE, "banana-bread" to EventKind.REDEMPTION, "croissant" to EventKind.PURCHASE)))
        // An id the menu no longer has is shown as it is rather than dropped.
        assertEquals("Because you chose seasonal-special.", Offers.reason(because("seasonal-special" to null)))
    }

    @Test
    fun `global offers say no personal data was used, and why`() {
        assertEquals("Popular with members overall; no personal data was used for this suggestion.",
            Offers.reason(Explanation("", false, emptyList(), FallbackReason.NoConsent)))
        assertEquals("Buy 2 more different item(s) for offers picked for you.",
            Offers.note(FallbackReason.TooLittleHistory(1uL, 3uL)))
    }
}
