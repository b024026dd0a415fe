package dev.covey.rewards

import org.covey.ConsentPrompt
import org.covey.DataCategory
import org.covey.PrivacySummary
import org.covey.PromptReason
import org.covey.Purpose
import org.covey.PurposeSummary
import java.time.Instant
import java.time.ZoneOffset
import java.time.format.DateTimeFormatter

/**
 * One consent prompt as the app shows it: why it is shown now, what the purpose uses, where
 * the data goes and for how long, and the plain-language summary of everything the member
 * has decided so far. Built only from the library's own declarations (the prompt list and the
 * privacy summary), so the words on screen are the terms the receipt will record.
 */
data class ConsentCard(
    val purpose: Purpose,
    val title: String,
    val why: String,
    val uses: List<String>,
    val whereItGoes: String,
    val leavesPhone: Boolean,
    val keptForDays: UInt,
    val plainLanguage: String,
)

/** Human words for the library's enums (UI copy lives here, shared by every front end). */
object ConsentCopy {
    fun why(reason: PromptReason): String = when (reason) {
        is PromptReason.NeverAsked -> "You haven't decided yet."
        is PromptReason.TermsChanged -> "We changed how this works; please decide again."
        is PromptReason.Expired -> "Your earlier choice has expired."
        is PromptReason.ExpiresSoon -> "Your consent runs out on ${date(reason.validUntilMs)}."
    }

    fun category(c: DataCategory): String = when (c) {
        DataCategory.PURCHASES -> "purchases"
        DataCategory.REDEMPTIONS -> "reward redemptions"
        DataCategory.VISITS -> "store visits"
        DataCategory.OFFER_INTERACTIONS -> "offers you viewed or opened"
        DataCategory.PERSONAL_MODEL -> "your personal taste profile (computed on this phone)"
    }

    fun date(ms: Long): String = DateTimeFormatter.ISO_LOCAL_DATE.format(Instant.ofEpochMilli(ms).atOffset(ZoneOffset.UTC))

    /** The cards for [prompts], using the purposes' declarations in [summary]. */
    fun cards(prompts: List<ConsentPrompt>, summary: PrivacySummary): List<ConsentCard> =
        prompts.mapNotNull { prompt ->
            summary.purposes.firstOrNull { it.purpose == prompt.purpose }?.let { card(prompt.reason, it, summary) }
        }

    private fun card(reason: PromptReason, p: PurposeSummary, summary: PrivacySummary) = ConsentCard(
        purpose = p.purpose,
        title = p.title,
        why = why(reason),
        uses = p.dataCategories.map(::category),
        whereItGoes = p.egress,
        leavesPhone = p.leavesDevice,
        keptForDays = p.retentionDays,
        plainLanguage = summary.plainLanguage,
    )
}
