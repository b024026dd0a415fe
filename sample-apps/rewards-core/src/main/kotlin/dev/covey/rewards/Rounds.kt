package dev.covey.rewards

import org.covey.CancelHandle
import org.covey.CoveyClient
import org.covey.CoveyException
import org.covey.DeviceConditions
import org.covey.ParticipationOutcome
import org.covey.Transport

/** How joining a round ended, in words for the member. */
sealed class RoundResult {
    /** The update was sent; [outcome] has the figures (bytes, ε, timings). */
    data class Joined(val outcome: ParticipationOutcome) : RoundResult()
    /** Not this time: [reason] is the library's named reason (conditions, consent, caps). */
    data class NotNow(val reason: String) : RoundResult()
    /** The server could not be reached or refused; try again later. */
    data class Failed(val reason: String) : RoundResult()
    /** Cancelled (the OS stopped the job, or the member withdrew). */
    data object Cancelled : RoundResult()

    /** One line for the member. */
    fun describe(): String = when (this) {
        is Joined -> "Thanks! Your phone sent one encrypted, noise-protected update (%d bytes, privacy loss ε = %.3f) for round %d."
            .format(outcome.uploadBytes.toLong(), outcome.epsilon, outcome.round)
        is NotNow -> "Not this time: $reason"
        is Failed -> "Could not reach the rewards server: $reason"
        Cancelled -> "Stopped before finishing; nothing more was sent."
    }
}

/**
 * Joins the population's open round over the host's [Transport], with the conditions the host
 * measured. Shared by the console (a command) and Android (the WorkManager worker).
 */
object Rounds {
    fun join(client: CoveyClient, transport: Transport, conditions: DeviceConditions, cancel: CancelHandle): RoundResult =
        try {
            RoundResult.Joined(client.participateWithTransport(transport, conditions, cancel))
        } catch (e: CoveyException.NotEligible) {
            RoundResult.NotNow(reason(e, "not eligible: "))
        } catch (e: CoveyException.ConsentRequired) {
            RoundResult.NotNow("'Improve recommendations for everyone' is not allowed")
        } catch (e: CoveyException.Network) {
            RoundResult.Failed(reason(e, "network: "))
        } catch (e: CoveyException.Cancelled) {
            RoundResult.Cancelled
        }

    /** The library's message without its variant prefix (which may be repeated). */
    private fun reason(e: CoveyException, prefix: String): String {
        var text = e.message.orEmpty()
        while (text.startsWith(prefix)) text = text.removePrefix(prefix)
        return text
    }
}
