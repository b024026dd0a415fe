package dev.covey.rewards.android.ui

import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.padding
import androidx.compose.material3.AlertDialog
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedButton
import androidx.compose.material3.Button
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.LaunchedEffect
import androidx.compose.ui.Modifier
import androidx.compose.ui.unit.dp
import dev.covey.rewards.ConsentCard

/**
 * The consent prompt for [card]. Shown by [RewardsScreen] whenever `promptsNeeded()` returns
 * something (first launch, changed terms, expired or expiring consent); it re-checks on every
 * resume. "Don't allow" (a recorded refusal, not asked again) is as prominent as "Allow" and nothing is pre-selected; the dialog cannot
 * be dismissed without an answer.
 */
@Composable
fun ConsentSheet(card: ConsentCard, onShown: () -> Unit, onAnswer: (Boolean) -> Unit) {
    LaunchedEffect(card.purpose) { onShown() }
    AlertDialog(
        onDismissRequest = {},
        title = { Text(card.title) },
        text = {
            Column(verticalArrangement = Arrangement.spacedBy(8.dp)) {
                Text(card.why, style = MaterialTheme.typography.titleSmall)
                Text("Uses: " + card.uses.joinToString(", "))
                Text("Where it goes: " + card.whereItGoes + if (card.leavesPhone) "" else " (never leaves this phone)")
                Text("Kept for ${card.keptForDays} days")
                Text(card.plainLanguage, style = MaterialTheme.typography.bodySmall)
            }
        },
        confirmButton = { Button(onClick = { onAnswer(true) }) { Text("Allow") } },
        dismissButton = { OutlinedButton(onClick = { onAnswer(false) }) { Text("Don't allow") } },
    )
}
