package dev.covey.testing

import java.io.File
import org.covey.Channel
import org.covey.ClientConfig
import org.covey.CoveyClient
import org.covey.EventKind
import org.covey.KeyStore
import org.covey.LoyaltyEvent

/** Builders for clients and events shared by the JVM test suites. */
object Clients {
    /** The notice text every test client is opened with (version [NOTICE_VERSION]). */
    const val NOTICE_TEXT = "Coffee shop rewards keeps your purchases on this phone to suggest offers. " +
        "With your permission it helps improve suggestions for everyone without sharing your history."
    const val NOTICE_VERSION: UInt = 1u

    /** A configuration over [dataDir]; [serverUrl] is the aggregation server, if any. */
    fun config(dataDir: File, serverUrl: String? = null, noticeVersion: UInt = NOTICE_VERSION) = ClientConfig(
        dataDir = dataDir.path,
        anchorPath = null,
        population = LocalServer.POPULATION,
        serverUrl = serverUrl,
        noticeId = "coffee-rewards-notice",
        noticeVersion = noticeVersion,
        noticeLanguage = "en",
        noticeText = NOTICE_TEXT,
        controllerName = "Coffee Shop Rewards Ltd",
        controllerContact = "privacy@coffee.example",
        subjectRef = "member-${dataDir.name}",
        jurisdiction = "EU",
        withdrawalMethod = "Privacy center in the app",
        renewalWindowDays = 30u,
    )

    /** Opens a client over [dataDir] with [keyStore]. */
    fun open(dataDir: File, keyStore: KeyStore, serverUrl: String? = null, noticeVersion: UInt = NOTICE_VERSION) =
        CoveyClient.open(config(dataDir, serverUrl, noticeVersion), keyStore)

    /** A purchase of [itemId] ([category], [cents]) at [timeMs]. */
    fun purchase(itemId: String, category: String, cents: Long, timeMs: Long) = LoyaltyEvent(
        kind = EventKind.PURCHASE,
        itemId = itemId,
        category = category,
        quantity = 1u,
        amountMinor = cents,
        currency = "USD",
        storeId = "store-001",
        channel = Channel.IN_STORE,
        timeMs = timeMs,
    )
}
