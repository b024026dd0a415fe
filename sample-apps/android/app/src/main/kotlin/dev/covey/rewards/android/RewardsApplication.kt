package dev.covey.rewards.android

import android.app.Application
import dev.covey.rewards.RewardsSession
import java.io.File
import org.covey.ClientConfig
import org.covey.CoveyClient

/**
 * Opens the member's Covey client once per process (it is thread-safe) with the data key
 * wrapped by the Android Keystore, and keeps the round worker scheduled.
 */
class RewardsApplication : Application() {
    /** Opened lazily, off the main thread, by the first caller (the view model or the worker). */
    val session: RewardsSession by lazy {
        val dir = File(filesDir, "covey").apply { mkdirs() }
        val client = CoveyClient.open(config(dir), AndroidKeystoreKeyStore())
        RewardsSession(client, NOTICE_VERSION)
    }

    override fun onCreate() {
        super.onCreate()
        RoundWorker.schedule(this)
    }

    private fun config(dir: File) = ClientConfig(
        dataDir = dir.path,
        // The audit anchor lives outside the database file so restoring an old database is
        // detected; no-backup storage keeps it off cloud backups.
        anchorPath = File(noBackupFilesDir, "covey-audit.anchor").path,
        population = "coffee-rewards",
        serverUrl = BuildConfigValues.SERVER_URL,
        noticeId = "coffee-rewards-notice",
        noticeVersion = NOTICE_VERSION,
        noticeLanguage = "en",
        noticeText = getString(R.string.notice_text),
        controllerName = "Coffee Shop Rewards Ltd",
        controllerContact = "privacy@coffee.example",
        subjectRef = "app-install",
        jurisdiction = "EU",
        withdrawalMethod = "Privacy center in the app",
        renewalWindowDays = 30u,
    )

    companion object {
        /** Bump with a material change of the terms: members are asked again. */
        const val NOTICE_VERSION: UInt = 1u
    }
}

/** Build-time settings (a real app would take them from BuildConfig fields). */
object BuildConfigValues {
    const val SERVER_URL = "https://rewards-fl.coffee.example"
}
