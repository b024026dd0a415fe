package dev.covey.rewards

import org.covey.ClientConfig

/**
 * The coffee shop's Covey configuration, the same on every front end: population, controller,
 * and the notice members consent under. Bump [NOTICE_VERSION] with a material change of the
 * terms and every member is asked again.
 */
object CoffeeShop {
    const val POPULATION = "coffee-rewards"
    const val NOTICE_ID = "coffee-rewards-notice"
    const val NOTICE_VERSION: UInt = 1u
    const val NOTICE_TEXT =
        "Coffee Shop Rewards keeps your purchases on this device to suggest offers you may like. " +
            "If you agree, your device also helps improve suggestions for all members by sending a " +
            "noised, encrypted model update that can only be read summed with many others. " +
            "Your purchase history itself never leaves the device."

    /**
     * The client configuration over [dataDir]. [anchorPath] keeps the audit anchor outside the
     * database (phones put it in no-backup storage; null: inside [dataDir]).
     */
    fun clientConfig(dataDir: String, serverUrl: String?, subjectRef: String, anchorPath: String? = null) = ClientConfig(
        dataDir = dataDir,
        anchorPath = anchorPath,
        population = POPULATION,
        serverUrl = serverUrl,
        noticeId = NOTICE_ID,
        noticeVersion = NOTICE_VERSION,
        noticeLanguage = "en",
        noticeText = NOTICE_TEXT,
        controllerName = "Coffee Shop Rewards Ltd",
        controllerContact = "privacy@coffee.example",
        subjectRef = subjectRef,
        jurisdiction = "EU",
        withdrawalMethod = "Privacy center in the app",
        renewalWindowDays = 30u,
    )
}
