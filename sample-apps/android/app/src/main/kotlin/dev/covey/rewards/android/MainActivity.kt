package dev.covey.rewards.android

import android.content.Intent
import android.os.Bundle
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.activity.viewModels
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.lazy.LazyColumn
import androidx.compose.foundation.lazy.items
import androidx.compose.material3.Button
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.NavigationBar
import androidx.compose.material3.NavigationBarItem
import androidx.compose.material3.Scaffold
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.collectAsState
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableIntStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import androidx.compose.ui.unit.dp
import androidx.core.content.FileProvider
import dev.covey.rewards.Menu
import dev.covey.rewards.android.ui.ConsentSheet
import dev.covey.rewards.android.ui.PrivacyCenterScreen

class MainActivity : ComponentActivity() {
    private val model: RewardsViewModel by viewModels()

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContent { MaterialTheme { RewardsScreen(model, ::share) } }
    }

    override fun onResume() {
        super.onResume()
        model.refresh()
    }

    private fun share(file: java.io.File) {
        val uri = FileProvider.getUriForFile(this, "$packageName.exports", file)
        startActivity(Intent.createChooser(Intent(Intent.ACTION_SEND).setType("application/json").putExtra(Intent.EXTRA_STREAM, uri).addFlags(Intent.FLAG_GRANT_READ_URI_PERMISSION), "Your rewards data"))
    }
}

@Composable
fun RewardsScreen(model: RewardsViewModel, share: (java.io.File) -> Unit) {
    val ui by model.ui.collectAsState()
    var tab by remember { mutableIntStateOf(0) }
    Scaffold(bottomBar = {
        NavigationBar {
            NavigationBarItem(selected = tab == 0, onClick = { tab = 0 }, icon = {}, label = { Text("Rewards") })
            NavigationBarItem(selected = tab == 1, onClick = { tab = 1 }, icon = {}, label = { Text("Privacy") })
        }
    }) { padding ->
        Column(Modifier.padding(padding)) {
            when (tab) {
                0 -> HomeScreen(ui, onBuy = model::buy)
                else -> ui.privacy?.let {
                    PrivacyCenterScreen(it, onAllow = model::setAllowed, onExport = { model.export(share) }, onErase = model::eraseEverything)
                }
            }
        }
    }
    // One card at a time, until promptsNeeded() is empty.
    ui.cards.firstOrNull()?.let { card ->
        ConsentSheet(card, onShown = { model.shown(card) }, onAnswer = { model.answer(card, it) })
    }
}

@Composable
private fun HomeScreen(ui: RewardsUiState, onBuy: (String) -> Unit) {
    LazyColumn(Modifier.padding(16.dp)) {
        ui.offers?.let { offers ->
            item { Text(if (offers.personalized) "Picked for you" else "Popular today", style = MaterialTheme.typography.titleMedium) }
            items(offers.offers) { offer ->
                Column(Modifier.padding(vertical = 6.dp)) {
                    Text(offer.name, style = MaterialTheme.typography.titleSmall)
                    Text(offer.reason, style = MaterialTheme.typography.bodySmall)
                }
            }
            offers.note?.let { item { Text(it, style = MaterialTheme.typography.labelSmall) } }
        }
        item { Text("Order", style = MaterialTheme.typography.titleMedium, modifier = Modifier.padding(top = 16.dp)) }
        items(Menu.items) { item ->
            Button(onClick = { onBuy(item.id) }, modifier = Modifier.padding(vertical = 2.dp)) {
                Text("${item.name} · ${Menu.price(item.priceCents)}")
            }
        }
    }
}
