package dev.covey.rewards

import org.covey.ConsentState
import org.covey.PrivacySummary
import org.covey.Purpose
import org.covey.Receipt

/** One row of the privacy center: a purpose, the member's choice, and what it means. */
data class PurposeRow(
    val purpose: Purpose,
    val title: String,
    val state: ConsentState,
    val choice: String,
    val whereItGoes: String,
    val leavesPhone: Boolean,
    val keptForDays: UInt,
)

/** What is stored on the phone, by kind. */
data class StoredRow(val what: String, val count: ULong)

/**
 * The privacy center: the plain-language summary, each purpose with the member's choice,
 * what is stored, what left the phone (count of uploads and the privacy loss ε), and the
 * signed receipts of every decision.
 */
data class PrivacyCenter(
    val plainLanguage: String,
    val purposes: List<PurposeRow>,
    val stored: List<StoredRow>,
    val uploads: ULong,
    val cumulativeEpsilon: Double,
    val lastUploadMs: Long?,
    val receipts: List<Receipt>,
) {
    companion object {
        fun choice(state: ConsentState): String = when (state) {
            ConsentState.NOT_ASKED -> "not decided"
            ConsentState.GIVEN -> "allowed"
            ConsentState.REFUSED -> "declined"
            ConsentState.WITHDRAWN -> "withdrawn"
            ConsentState.EXPIRED -> "expired"
        }

        fun from(summary: PrivacySummary, receipts: List<Receipt>) = PrivacyCenter(
            plainLanguage = summary.plainLanguage,
            purposes = summary.purposes.map {
                PurposeRow(it.purpose, it.title, it.state, choice(it.state), it.egress, it.leavesDevice, it.retentionDays)
            },
            stored = summary.stored.map { StoredRow(ConsentCopy.category(it.category), it.count) },
            uploads = summary.uploads,
            cumulativeEpsilon = summary.cumulativeEpsilon,
            lastUploadMs = summary.lastUploadMs,
            receipts = receipts,
        )
    }
}
