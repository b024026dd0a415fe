package dev.covey.rewards.android

import android.app.Application
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.viewModelScope
import dev.covey.rewards.ConsentCard
import dev.covey.rewards.OfferList
import dev.covey.rewards.Offers
import dev.covey.rewards.PrivacyCenter
import dev.covey.rewards.RewardsSession
import java.io.File
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import org.covey.CoveyException
import org.covey.Purpose

/** What the screens show; every field is read from the client, nothing is cached elsewhere. */
data class RewardsUiState(
    val cards: List<ConsentCard> = emptyList(),
    val offers: OfferList? = null,
    val privacy: PrivacyCenter? = null,
    val message: String? = null,
)

/**
 * Drives the shared [RewardsSession] (sample-apps/rewards-core, tested on the JVM) from Compose.
 * Every client call runs on [Dispatchers.IO]: the library blocks on disk I/O.
 */
class RewardsViewModel(app: Application) : AndroidViewModel(app) {
    private val application = app as RewardsApplication
    private val session: RewardsSession get() = application.session
    private val state = MutableStateFlow(RewardsUiState())
    val ui: StateFlow<RewardsUiState> = state.asStateFlow()

    /** Re-reads prompts, offers and the privacy center. Called on every resume, so consent
     *  prompts re-appear as soon as `promptsNeeded()` asks for them (changed terms, expiry). */
    fun refresh() = io {
        state.value = state.value.copy(
            cards = session.consentCards(),
            offers = Offers.load(session.client, 3),
            privacy = session.privacyCenter(),
        )
    }

    fun shown(card: ConsentCard) = io { session.shown(card, SURFACE_SHEET) }

    fun answer(card: ConsentCard, accept: Boolean) = io {
        session.answer(card, accept, SURFACE_SHEET)
        RoundWorker.schedule(getApplication())
        refresh()
    }

    fun setAllowed(purpose: Purpose, allowed: Boolean) = io {
        if (allowed) session.allow(purpose, SURFACE_PRIVACY) else session.withdraw(purpose, SURFACE_PRIVACY)
        if (purpose == Purpose.FEDERATED_TRAINING && !allowed) RoundWorker.cancel(getApplication())
        refresh()
    }

    fun buy(itemId: String) = io {
        session.buy(itemId)
        refresh()
    }

    /** Writes the export where the share sheet can pick it up; returns the file. */
    fun export(onReady: (File) -> Unit) = io {
        val file = File(getApplication<Application>().cacheDir, "coffee-rewards-export.json")
        file.writeText(session.exportJson())
        withContext(Dispatchers.Main) { onReady(file) }
    }

    fun eraseEverything() = io {
        session.eraseEverything()
        RoundWorker.cancel(getApplication())
        refresh()
    }

    private fun io(block: suspend () -> Unit) {
        viewModelScope.launch(Dispatchers.IO) {
            try {
                block()
            } catch (e: CoveyException) {
                // The library's messages never carry member data.
                state.value = state.value.copy(message = e.message)
            }
        }
    }

    private companion object {
        const val SURFACE_SHEET = "consent_sheet"
        const val SURFACE_PRIVACY = "privacy_center"
    }
}
