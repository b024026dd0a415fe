package dev.covey.rewards.android

import android.content.Context
import androidx.work.Constraints
import androidx.work.CoroutineWorker
import androidx.work.ExistingPeriodicWorkPolicy
import androidx.work.NetworkType
import androidx.work.PeriodicWorkRequestBuilder
import androidx.work.WorkManager
import androidx.work.WorkerParameters
import dev.covey.rewards.RoundResult
import dev.covey.rewards.Rounds
import java.util.concurrent.TimeUnit
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.job
import kotlinx.coroutines.withContext
import org.covey.CancelHandle
import org.covey.Purpose

/**
 * Joins a federated round when the phone is charging, on an unmetered network and idle.
 * WorkManager's constraints decide when the job starts; the worker then measures the same
 * conditions itself ([DeviceState]) and hands them to the library, which refuses with a named
 * reason if they stopped holding. If WorkManager stops the job (constraints lost), the
 * coroutine is cancelled and so is the round, through its [CancelHandle].
 */
class RoundWorker(context: Context, params: WorkerParameters) : CoroutineWorker(context, params) {
    override suspend fun doWork(): Result = withContext(Dispatchers.IO) {
        val app = applicationContext as RewardsApplication
        val client = app.session.client
        if (!client.status(Purpose.FEDERATED_TRAINING).validForProcessing) return@withContext Result.success()
        CancelHandle().use { cancel ->
            val stop = coroutineContext.job.invokeOnCompletion { cause -> if (cause != null) cancel.cancel() }
            try {
                val transport = OkHttpTransport(BuildConfigValues.SERVER_URL)
                // Pick up the model earlier rounds published (offers improve even when this
                // phone is not picked); refused without training consent, like the round.
                runCatching { client.refreshModelWithTransport(transport) }
                val result = Rounds.join(client, transport, DeviceState.read(applicationContext), cancel)
                when (result) {
                    is RoundResult.Joined, is RoundResult.NotNow -> Result.success()
                    // Network trouble or an OS stop: try again with WorkManager's back-off.
                    is RoundResult.Failed, RoundResult.Cancelled -> Result.retry()
                }
            } finally {
                stop.dispose()
            }
        }
    }

    companion object {
        private const val NAME = "covey-round"

        /** Keeps one periodic job; the library checks consent again when it runs. */
        fun schedule(context: Context) {
            val constraints = Constraints.Builder()
                .setRequiresCharging(true)
                .setRequiredNetworkType(NetworkType.UNMETERED)
                .setRequiresDeviceIdle(true)
                .setRequiresBatteryNotLow(true)
                .build()
            val request = PeriodicWorkRequestBuilder<RoundWorker>(6, TimeUnit.HOURS)
                .setConstraints(constraints)
                .build()
            WorkManager.getInstance(context).enqueueUniquePeriodicWork(NAME, ExistingPeriodicWorkPolicy.KEEP, request)
        }

        /** Stops scheduling (training consent withdrawn, or everything erased). */
        fun cancel(context: Context) {
            WorkManager.getInstance(context).cancelUniqueWork(NAME)
        }
    }
}
