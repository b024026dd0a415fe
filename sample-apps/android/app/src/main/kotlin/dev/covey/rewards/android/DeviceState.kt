package dev.covey.rewards.android

import android.content.Context
import android.content.Intent
import android.content.IntentFilter
import android.net.ConnectivityManager
import android.net.NetworkCapabilities
import android.os.BatteryManager
import android.os.PowerManager
import org.covey.DeviceConditions

/**
 * The phone's conditions as Covey's eligibility rules want them, read at the moment the round
 * worker runs. WorkManager's constraints already held when the job started; reading them again
 * lets the library refuse (NotEligible, with the reason) if the phone was unplugged since.
 */
object DeviceState {
    fun read(context: Context): DeviceConditions {
        val battery = context.registerReceiver(null, IntentFilter(Intent.ACTION_BATTERY_CHANGED))
        val plugged = (battery?.getIntExtra(BatteryManager.EXTRA_PLUGGED, 0) ?: 0) != 0
        val level = battery?.getIntExtra(BatteryManager.EXTRA_LEVEL, -1) ?: -1
        val scale = battery?.getIntExtra(BatteryManager.EXTRA_SCALE, -1) ?: -1
        val percent = if (level >= 0 && scale > 0) (level * 100 / scale).coerceIn(0, 100) else 0

        val connectivity = context.getSystemService(ConnectivityManager::class.java)
        val caps = connectivity.getNetworkCapabilities(connectivity.activeNetwork)
        val unmetered = caps != null &&
            caps.hasCapability(NetworkCapabilities.NET_CAPABILITY_INTERNET) &&
            caps.hasCapability(NetworkCapabilities.NET_CAPABILITY_NOT_METERED)

        val power = context.getSystemService(PowerManager::class.java)
        val idle = power.isDeviceIdleMode || !power.isInteractive

        return DeviceConditions(charging = plugged, unmetered = unmetered, idle = idle, batteryPercent = percent.toUByte())
    }
}
