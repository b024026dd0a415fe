package dev.covey.rewards.android.ui

import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.lazy.LazyColumn
import androidx.compose.foundation.lazy.items
import androidx.compose.material3.AlertDialog
import androidx.compose.material3.Button
import androidx.compose.material3.HorizontalDivider
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedButton
import androidx.compose.material3.Switch
import androidx.compose.material3.Text
import androidx.compose.material3.TextButton
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import androidx.compose.ui.unit.dp
import dev.covey.rewards.ConsentCopy
import dev.covey.rewards.PrivacyCenter
import org.covey.ConsentState
import org.covey.Purpose

/**
 * The privacy center: plain-language summary, a switch per purpose (withdrawing erases the
 * purpose's derived data at once), what is stored, what left the phone and the privacy loss ε,
 * signed receipts, export and erase.
 */
@Composable
fun PrivacyCenterScreen(
    center: PrivacyCenter,
    onAllow: (Purpose, Boolean) -> Unit,
    onExport: () -> Unit,
    onErase: () -> Unit,
) {
    var confirmErase by remember { mutableStateOf(false) }
    LazyColumn(Modifier.padding(16.dp)) {
        item { Text(center.plainLanguage, style = MaterialTheme.typography.bodyMedium) }
        item { Text("Your choices", style = MaterialTheme.typography.titleMedium, modifier = Modifier.padding(top = 16.dp)) }
        items(center.purposes) { row ->
            Row(Modifier.fillMaxWidth().padding(vertical = 8.dp)) {
                Column(Modifier.weight(1f)) {
                    Text(row.title)
                    Text(if (row.leavesPhone) row.whereItGoes else "Stays on this phone", style = MaterialTheme.typography.bodySmall)
                    Text("${row.choice} · kept ${row.keptForDays} days", style = MaterialTheme.typography.labelSmall)
                }
                Switch(checked = row.state == ConsentState.GIVEN, onCheckedChange = { onAllow(row.purpose, it) })
            }
        }
        item { HorizontalDivider() }
        item { Text("Stored on this phone", style = MaterialTheme.typography.titleMedium) }
        items(center.stored.filter { it.count > 0uL }) { Text("${it.what}: ${it.count}") }
        item {
            Text("Left this phone: ${center.uploads} model update(s), privacy loss ε = ${"%.3f".format(center.cumulativeEpsilon)}")
            center.lastUploadMs?.let { Text("Last update sent ${ConsentCopy.date(it)}") }
        }
        item { Text("Receipts", style = MaterialTheme.typography.titleMedium, modifier = Modifier.padding(top = 16.dp)) }
        items(center.receipts) { r ->
            Text("${ConsentCopy.date(r.eventTimeMs)} ${r.purpose} ${r.event.name.lowercase()} · notice v${r.noticeVersion}", style = MaterialTheme.typography.bodySmall)
        }
        item {
            Row(Modifier.padding(top = 16.dp)) {
                Button(onClick = onExport) { Text("Download my data") }
                OutlinedButton(onClick = { confirmErase = true }, modifier = Modifier.padding(start = 8.dp)) { Text("Delete everything") }
            }
        }
    }
    if (confirmErase) {
        AlertDialog(
            onDismissRequest = { confirmErase = false },
            title = { Text("Delete everything?") },
            text = { Text("Your history, your choices and your receipts will be deleted from this phone and the key destroyed.") },
            confirmButton = { TextButton(onClick = { confirmErase = false; onErase() }) { Text("Delete") } },
            dismissButton = { TextButton(onClick = { confirmErase = false }) { Text("Cancel") } },
        )
    }
}
