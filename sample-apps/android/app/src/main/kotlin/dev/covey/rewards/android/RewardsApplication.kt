package dev.covey.rewards.android

import android.app.Application
import dev.covey.rewards.CoffeeShop
import dev.covey.rewards.RewardsSession
import java.io.File
import org.covey.CoveyClient

/**
 * Opens the member's Covey client once per process (it is thread-safe) with the data key
 * wrapped by the Android Keystore, and keeps the round worker scheduled.
 */
class RewardsApplication : Application() {
    /** Opened lazily, off the main thread, by the first caller (the view model or the worker). */
    val session: RewardsSession by lazy {
        val dir = File(filesDir, "covey").apply { mkdirs() }
        // The audit anchor lives outside the database file so restoring an old database is
        // detected; no-backup storage keeps it off cloud backups.
        val anchor = File(noBackupFilesDir, "covey-audit.anchor").path
        val config = CoffeeShop.clientConfig(dir.path, BuildConfigValues.SERVER_URL, "app-install", anchor)
        RewardsSession(CoveyClient.open(config, AndroidKeystoreKeyStore()), CoffeeShop.NOTICE_VERSION).also {
            // The first model ships in the APK (assets/coffee-model.bin, an operator export);
            // later versions come from the server.
            it.installFirstModel { assets.open(BUNDLED_MODEL).use { input -> input.readBytes() } }
        }
    }

    private companion object {
        const val BUNDLED_MODEL = "coffee-model.bin"
    }

    override fun onCreate() {
        super.onCreate()
        RoundWorker.schedule(this)
    }
}

/** Build-time settings (a real app would take them from BuildConfig fields). */
object BuildConfigValues {
    const val SERVER_URL = "https://rewards-fl.coffee.example"
}
